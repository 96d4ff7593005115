-- Refuses a REST request whose JSON body names a field its request message does not define.
-- Envoy's gRPC-JSON transcoder drops such fields silently (envoy #46623): a misspelt
-- "stopLos" must not place an order without a stop-loss. Everything else about the body
-- (syntax, types) is left to the transcoder, which already answers 400 for it.
--
-- The field tables come from the descriptor set (gateway/rest_fields.py renders
-- exness_rest_fields.lua next to this file); dkjson is the JSON decoder (vendored, MIT).
local json = require("dkjson")
local spec = require("exness_rest_fields")

local M = {}

local function route_of(method, path)
  path = path:gsub("%?.*$", "")
  for _, route in ipairs(spec.routes) do
    if route.method == method and path:match(route.pattern) then
      return route
    end
  end
  return nil
end

local function is_array(value)
  local meta = getmetatable(value)
  return meta ~= nil and meta.__jsontype == "array"
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
      return prefix .. tostring(key)
    end
    if type(nested) == "string" and type(item) == "table" then
      local items = is_array(item) and item or { item }
      for _, element in ipairs(items) do
        local bad = unknown_field(element, nested, prefix .. key .. ".")
        if bad ~= nil then
          return bad
        end
      end
    end
  end
  return nil
end

function M.on_request(handle)
  local headers = handle:headers()
  local method = headers:get(":method")
  if method ~= "POST" and method ~= "PATCH" and method ~= "PUT" then
    return
  end
  local content_type = headers:get("content-type") or ""
  if content_type:find("^application/grpc") then
    return
  end
  local route = route_of(method, headers:get(":path") or "")
  if route == nil then
    return
  end
  local body = handle:body()
  if body == nil or body:length() == 0 then
    return
  end
  local decoded = json.decode(body:getBytes(0, body:length()), 1, nil)
  local bad = unknown_field(decoded, route.message, "")
  if bad == nil then
    return
  end
  -- Plain text: the edge's local_reply_config turns it into a JSON google.rpc.Status.
  handle:respond({ [":status"] = "400", ["content-type"] = "text/plain" },
    "invalid request: " .. bad .. ": unknown field")
end

return M
