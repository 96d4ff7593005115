-- Records the gRPC status a call really ended with, for the access log.
--
-- The transcoder turns a REST call's gRPC status into an HTTP status and drops grpc-status,
-- so the log's %GRPC_STATUS% only guesses it back from the HTTP code (400 reads as 13, 404
-- as 12, 409 as 2). This filter runs after the transcoder and the gRPC-Web filter, so on the
-- way back it sees the response as gRPC for every protocol, and stores its status as dynamic
-- metadata (exness.grpc_status). The body is streamed through chunk by chunk, never buffered.
local M = {}

function M.on_response(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if content_type:sub(1, 16) ~= "application/grpc" then
    return
  end
  -- A trailers-only response (every error before the first message) has it in the headers.
  local status = headers:get("grpc-status")
  if status == nil then
    for _ in handle:bodyChunks() do
    end
    local trailers = handle:trailers()
    if trailers ~= nil then
      status = trailers:get("grpc-status")
    end
  end
  if status ~= nil then
    handle:streamInfo():dynamicMetadata():set("exness", "grpc_status", status)
  end
end

return M
