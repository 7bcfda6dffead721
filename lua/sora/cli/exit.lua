--- The exit codes of the `sora` command: one per kind of outcome, stable across releases
-- (scripts branch on them). docs/cli.md has the same table; spec/cli_exit_spec.lua holds
-- every row to it.
local exit = {}

exit.OK = 0             -- the command did what it was asked
exit.OTHER = 1          -- anything else: an unexpected error, a missing optional module
exit.USAGE = 2          -- the command line is wrong: unknown flag, missing argument, bad value
exit.BAD_REQUEST = 3    -- the API refused the request: 400, 409, 422
exit.AUTH = 4           -- no key, or the key was refused: 401, 403
exit.NOT_FOUND = 5      -- 404: no such video or character
exit.RATE_LIMIT = 6     -- 429, still after the retries
exit.SERVER = 7         -- 5xx or another status, or an answer that is not the API's
exit.CONNECTION = 8     -- no connection, reset, DNS failure, TLS failure
exit.TIMEOUT = 9        -- a request or a wait ran out of time
exit.FAILED = 10        -- the video itself failed (moderation, internal error)
exit.IO = 11            -- a local file cannot be read or written
exit.BATCH = 12         -- `sora batch`: some jobs failed (listed on stderr); a rerun resumes
exit.INTERRUPTED = 130  -- Ctrl-C (SIGINT), as shells report a command killed by it

-- sora.Error kinds (README "Errors") to exit codes.
local BY_KIND = {
  bad_request = exit.BAD_REQUEST,
  conflict = exit.BAD_REQUEST,
  unprocessable_entity = exit.BAD_REQUEST,
  authentication = exit.AUTH,
  permission_denied = exit.AUTH,
  not_found = exit.NOT_FOUND,
  rate_limit = exit.RATE_LIMIT,
  internal_server = exit.SERVER,
  api_status = exit.SERVER,
  invalid_response = exit.SERVER,
  connection = exit.CONNECTION,
  timeout = exit.TIMEOUT,
  failed = exit.FAILED,
  io = exit.IO,
}

--- The exit code for a sora.Error (or anything else that ended a command: OTHER).
function exit.for_error(err)
  return type(err) == "table" and BY_KIND[err.kind] or exit.OTHER
end

return exit
