-- Is a text exactly one JSON value as RFC 8259 defines it? Nothing more lenient: no comments,
-- no single quotes, no unquoted or non-string keys, no missing or trailing commas, no byte
-- order mark, nothing after the value. dkjson (the decoder) accepts all of those, and so does
-- the transcoder in part: a body the two might read differently is refused instead.
local M = {}

local find, sub, byte = string.find, string.sub, string.byte

local function skip_space(text, pos)
  local _, last = find(text, "^[ \t\n\r]*", pos)
  return last + 1
end

local function scan_string(text, pos)
  -- pos is at the opening quote
  pos = pos + 1
  while true do
    local c = byte(text, pos)
    if c == nil or c < 0x20 then
      return nil -- unterminated, or a raw control character
    elseif c == 0x22 then
      return pos + 1
    elseif c == 0x5C then
      local e = sub(text, pos + 1, pos + 1)
      if e == "u" then
        if not find(text, "^%x%x%x%x", pos + 2) then
          return nil
        end
        pos = pos + 6
      elseif find(e, '^["\\/bfnrt]$') then
        pos = pos + 2
      else
        return nil
      end
    else
      pos = pos + 1
    end
  end
end

local scan_value -- forward declaration

local function scan_container(text, pos, close, is_object, depth)
  pos = skip_space(text, pos + 1)
  if sub(text, pos, pos) == close then
    return pos + 1
  end
  while true do
    if is_object then
      if sub(text, pos, pos) ~= '"' then
        return nil
      end
      pos = scan_string(text, pos)
      if pos == nil then
        return nil
      end
      pos = skip_space(text, pos)
      if sub(text, pos, pos) ~= ":" then
        return nil
      end
      pos = skip_space(text, pos + 1)
    end
    pos = scan_value(text, pos, depth + 1)
    if pos == nil then
      return nil
    end
    pos = skip_space(text, pos)
    local c = sub(text, pos, pos)
    if c == close then
      return pos + 1
    elseif c ~= "," then
      return nil
    end
    pos = skip_space(text, pos + 1)
  end
end

scan_value = function(text, pos, depth)
  if depth > 64 then
    return nil
  end
  local c = sub(text, pos, pos)
  if c == "{" then
    return scan_container(text, pos, "}", true, depth)
  elseif c == "[" then
    return scan_container(text, pos, "]", false, depth)
  elseif c == '"' then
    return scan_string(text, pos)
  end
  for _, literal in ipairs({ "true", "false", "null" }) do
    if sub(text, pos, pos + #literal - 1) == literal then
      return pos + #literal
    end
  end
  -- number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  local _, last = find(text, "^%-?", pos)
  local start = last + 1
  local _, int_end = find(text, "^0", start)
  if int_end == nil then
    _, int_end = find(text, "^[1-9][0-9]*", start)
  end
  if int_end == nil then
    return nil
  end
  pos = int_end + 1
  local _, frac_end = find(text, "^%.[0-9]+", pos)
  if frac_end ~= nil then
    pos = frac_end + 1
  end
  local _, exp_end = find(text, "^[eE][+-]?[0-9]+", pos)
  if exp_end ~= nil then
    pos = exp_end + 1
  end
  return pos
end

function M.valid(text)
  local pos = scan_value(text, skip_space(text, 1), 0)
  return pos ~= nil and skip_space(text, pos) == #text + 1
end

return M
