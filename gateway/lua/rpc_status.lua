-- A google.rpc.Status with its details, encoded as protobuf for grpc-status-details-bin: the
-- shape every error of the platform has (ErrorInfo with a reason, BadRequest naming the field
-- for bad input), so a refusal made in Lua at the edge decodes like one from a service. The
-- transcoder renders it as the JSON body of a REST error, like a service's.
--
-- Only what these messages need is encoded: varints and length-delimited fields.
local M = {}

local DOMAIN = "exness.com" -- kit.rpc.errors.ERROR_DOMAIN
local TYPE_PREFIX = "type.googleapis.com/"

local function varint(n)
  local out = {}
  repeat
    local byte = n % 128
    n = math.floor(n / 128)
    if n > 0 then
      byte = byte + 128
    end
    out[#out + 1] = string.char(byte)
  until n == 0
  return table.concat(out)
end

-- Field `number` of wire type 2 (bytes, strings, messages).
local function bytes_field(number, bytes)
  return varint(number * 8 + 2) .. varint(#bytes) .. bytes
end

local function any(type_name, bytes)
  return bytes_field(1, TYPE_PREFIX .. type_name) .. bytes_field(2, bytes)
end

-- google.rpc.ErrorInfo {reason = 1, domain = 2}
local function error_info(reason)
  return any("google.rpc.ErrorInfo", bytes_field(1, reason) .. bytes_field(2, DOMAIN))
end

-- google.rpc.BadRequest {field_violations = 1: FieldViolation {field = 1, description = 2}}
local function bad_request(field, description)
  local violation = bytes_field(1, field) .. bytes_field(2, description)
  return any("google.rpc.BadRequest", bytes_field(1, violation))
end

-- google.rpc.Status {code = 1 (int32), message = 2, details = 3 (Any)}, as protobuf bytes.
-- `field` (optional) names the request field at fault.
function M.encode(code, message, reason, field, description)
  local out = varint(1 * 8 + 0) .. varint(code) .. bytes_field(2, message)
  out = out .. bytes_field(3, error_info(reason))
  if field ~= nil then
    out = out .. bytes_field(3, bad_request(field, description))
  end
  return out
end

return M
