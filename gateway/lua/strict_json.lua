-- Refuses a REST request whose JSON body is not strict JSON or names a field its request
-- message does not define. Envoy's gRPC-JSON transcoder drops unknown fields silently (envoy
-- #46623) and is lenient about syntax: a misspelt "stopLos" must not place an order without a
-- stop-loss, and "volum" must not close a whole position.
--
-- It runs in two halves around the transcoder, so that the check never guesses what the
-- transcoder will do (content-type variants, trailing slashes, escapes in paths...):
--   before_transcoding keeps the raw body of every request that is not native gRPC;
--   after_transcoding looks at the gRPC method the transcoder actually chose, and checks the
--   kept body against that method's request message. A transcoded call whose body was not
--   kept is refused: the guard fails closed.
--
-- The field tables come from the descriptor set (gateway/rest_fields.py renders
-- exness_rest_fields.lua next to this file); dkjson decodes (vendored, MIT) once
-- strict_syntax has accepted the text.
local json = require("dkjson")
local rpc_status = require("rpc_status")
local spec = require("exness_rest_fields")
local strict_syntax = require("strict_syntax")

local M = {}
local NAMESPACE = "exness.strict_json"
local GRPC = "application/grpc"

-- Envoy's own test for a gRPC request (Grpc::Common::hasGrpcContentType): exactly
-- application/grpc, or application/grpc+<codec>. The transcoder leaves those alone, and their
-- bodies may be endless streams, so they are not read here.
local function is_native_grpc(content_type)
  if content_type == nil or content_type:sub(1, #GRPC) ~= GRPC then
    return false
  end
  return #content_type == #GRPC or content_type:sub(#GRPC + 1, #GRPC + 1) == "+"
end

function M.before_transcoding(handle)
  if is_native_grpc(handle:headers():get("content-type")) then
    return
  end
  local body = handle:body() -- the whole body; the buffer filter has bounded its size
  local text = ""
  if body ~= nil and body:length() > 0 then
    text = body:getBytes(0, body:length())
  end
  handle:streamInfo():dynamicMetadata():set(NAMESPACE, "body", text)
end

local function is_array(value)
  local meta = getmetatable(value)
  return meta ~= nil and meta.__jsontype == "array"
end

-- A client-chosen name, safe to echo: printable ASCII, at most 64 characters (the message
-- travels in a header and must stay valid UTF-8 for the transcoder's JSON status).
local function printable(name)
  local safe = tostring(name):gsub("[^\32-\126]", "?")
  return safe:sub(1, 64)
end

-- The dotted path of the first unknown field in `value` (a decoded JSON object of message
-- `type_name`), or nil. Well-known types and scalars are not looked into.
local function unknown_field(value, type_name, prefix)
  local fields = spec.messages[type_name]
  if fields == nil or type(value) ~= "table" or is_array(value) then
    return nil
  end
  for key, item in pairs(value) do
    local nested = fields[key]
    if nested == nil then
      return prefix .. printable(key)
    end
    if type(nested) == "string" and type(item) == "table" then
      local items = is_array(item) and item or { item }
      for _, element in ipairs(items) do
        local bad = unknown_field(element, nested, prefix .. printable(key) .. ".")
        if bad ~= nil then
          return bad
        end
      end
    end
  end
  return nil
end

local UNKNOWN_FIELD = "unknown field"

-- The problem with `text` as the body of `message`, or nil: a description, and the field at
-- fault when there is one.
local function problem(text, message)
  if text == "" then
    return nil
  end
  if not strict_syntax.valid(text) then
    return "the body is not strict JSON (RFC 8259)"
  end
  local decoded = json.decode(text, 1, json.null)
  local bad = unknown_field(decoded, message, "")
  if bad ~= nil then
    return UNKNOWN_FIELD, bad
  end
  return nil
end

-- gRPC-shaped, since the request is a gRPC call by now, and with the details the services'
-- errors carry (ErrorInfo INVALID_ARGUMENT; BadRequest naming the field when one is at
-- fault): the transcoder turns it into a 400 with that JSON google.rpc.Status.
local function refuse(handle, why, field)
  local message = "invalid request: " .. (field and (field .. ": ") or "") .. why
  local encoded = message:gsub("[^%w%-%._~ :]", function(c)
    return string.format("%%%02X", c:byte())
  end)
  local details = rpc_status.encode(3, message, "INVALID_ARGUMENT", field, why)
  handle:respond({
    [":status"] = "200",
    ["content-type"] = GRPC,
    ["grpc-status"] = "3",
    ["grpc-message"] = encoded,
    ["grpc-status-details-bin"] = handle:base64Escape(details),
  }, "")
end

function M.after_transcoding(handle)
  local headers = handle:headers()
  local message = spec.methods[headers:get(":path") or ""]
  if message == nil then
    return -- not a method that takes a JSON body
  end
  local kept = handle:streamInfo():dynamicMetadata():get(NAMESPACE)
  local text = kept and kept.body
  if text == nil then
    if headers:get("x-envoy-original-path") ~= nil then
      refuse(handle, "the request body could not be inspected")
    end
    return -- native gRPC: protobuf has no field names to misspell
  end
  local why, field = problem(text, message)
  if why ~= nil then
    refuse(handle, why, field)
  end
end

return M
