---@meta sora
-- Type annotations for lua-language-server (LuaLS): the whole public API of sora, including
-- what the C core defines (sora.Client, sora.Video, sora.Error, sora.Transfer) and every
-- option table. `---@meta sora` and the `return sora` at the end tie `require "sora"` to
-- them (docs/neovim.md: pointing LuaLS at this directory). Editors read this file; nothing
-- requires it. spec/types_spec.lua compares these names with the live module, so they
-- cannot drift, and checks that wiring.

-- ---- the module -------------------------------------------------------------------------

---@class sora
---@field _VERSION string the version, e.g. "0.1.0"
---@field curl_version string the version of the libcurl sora runs on, e.g. "7.88.1"
---@field webhooks sora.webhooks verifying (and signing) the webhooks OpenAI sends
local sora = {}

--- Makes a client. Options not given come from the environment (OPENAI_API_KEY,
--- OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID, OPENAI_CUSTOM_HEADERS, OPENAI_LOG).
--- Raises when there is no key or an option is wrong.
---@param opts? sora.ClientOptions
---@return sora.Client
function sora.new(opts) end


--- Whether `value` is a sora.Error.
---@param value any
---@return boolean
function sora.is_error(value) end

--- Seconds on the monotonic clock sora measures its deadlines with.
---@return number
function sora.now() end

-- ---- webhooks ------------------------------------------------------------------------------

---@class sora.webhooks
---@field DEFAULT_TOLERANCE number seconds a timestamp may lie from now, either way (300)
local webhooks = {}

--- Verifies a webhook: the raw body, its headers (names in any case) and the secret
--- (`whsec_...`; nil reads OPENAI_WEBHOOK_SECRET). The event, or nil, err (kind "webhook",
--- err.check one of "headers", "timestamp", "signature", "body").
---@param body string
---@param headers table<string, string>
---@param secret? string
---@param opts? { tolerance?: number }
---@return sora.WebhookEvent|nil event, sora.Error? err
function webhooks.verify(body, headers, secret, opts) end

--- The three headers a sender attaches to `body`, signed with `secret`.
---@param body string
---@param secret string
---@param opts? { id?: string, timestamp?: integer }
---@return { ["webhook-id"]: string, ["webhook-timestamp"]: string, ["webhook-signature"]: string }
function webhooks.sign(body, secret, opts) end

---@class sora.WebhookEvent
---@field id string "evt_..."
---@field object string "event"
---@field created_at integer
---@field type "video.completed"|"video.failed"
---@field data { id: string }

-- ---- sora.luv: libuv (luv, Neovim's vim.loop) drives a client ------------------------------

---@class sora.luv
local luv = {}

--- Wires the client to a libuv loop: one poll handle per socket, one timer, each closed when
--- no longer needed. `uv` is `require "luv"` or Neovim's vim.uv / vim.loop (the default inside
--- Neovim). opts.schedule(fn) runs sora's work later (default vim.schedule inside Neovim;
--- false: call directly); opts.on_advance(running) hears how many tasks are left after each
--- advance. Returns detach().
---@param client sora.Client
---@param uv? table
---@param opts? { schedule?: fun(fn: function)|false, on_advance?: fun(running: integer) }
---@return fun() detach
function luv.attach(client, uv, opts) end

-- ---- option tables ------------------------------------------------------------------------

---@alias sora.LogLevel "info"|"debug"
---@alias sora.Callable function|table|userdata a function, or anything with __call

---@class sora.ClientOptions
---@field api_key? string the key, sent as `Authorization: Bearer` (default OPENAI_API_KEY)
---@field base_url? string the API's URL (default OPENAI_BASE_URL, else https://api.openai.com/v1)
---@field organization? string `OpenAI-Organization` (default OPENAI_ORG_ID)
---@field project? string `OpenAI-Project` (default OPENAI_PROJECT_ID)
---@field headers? table<string, string> extra request headers
---@field timeout? number seconds per attempt (600); downloads use stall_timeout instead
---@field connect_timeout? number seconds to connect (10)
---@field stall_timeout? number a download receiving nothing this long fails as timeout (60)
---@field deadline? number seconds for a whole call, retries included (none)
---@field max_retries? integer retries of a failed attempt (2)
---@field log? sora.LogLevel|fun(line: string, level: sora.LogLevel) log to stderr, or to a function
---@field tls_verify? boolean only `false` turns certificate checks off (true)
---@field ca_file? string a CA bundle
---@field proxy? string|false a proxy URL (http, https, socks4, socks4a, socks5, socks5h); false: none, whatever the environment says
---@field no_proxy? string hosts that bypass the proxy, comma-separated
---@field proxy_tunnel? boolean tunnel through the proxy with CONNECT even to an http:// API
---@field api_key_cmd? string a shell command whose first line of output is the key (run once, never logged)
---@field api_key_header? string send the raw key in this header instead of Authorization: Bearer (Azure: "api-key")
---@field api_version? string the api-version query parameter of every request (default OPENAI_API_VERSION)
---@field reconcile? boolean false: a create whose answer was lost is sent again without looking for its video first (true)

---@class sora.RequestOptions
---@field max_retries? integer this call's retries
---@field timeout? number this call's seconds per attempt
---@field deadline? number this call's seconds in all, retries included
---@field with_response? boolean also return the HTTP response (a sora.Response) as the second value

---@alias sora.ImageReference string|{ path: string }|{ data: string, filename?: string, content_type?: string }|{ image_url: string }|{ file_id: string }
---@alias sora.VideoReference string|{ id: string }|{ path: string }|{ data: string, filename?: string, content_type?: string }
---@alias sora.VideoFile string|{ path: string }|{ data: string, filename?: string, content_type?: string }

---@class sora.CreateParams: sora.RequestOptions
---@field prompt string
---@field model? string "sora-2" or "sora-2-pro"
---@field seconds? string|integer "4", "8" or "12" (sent as a string)
---@field size? string "720x1280", "1280x720", "1024x1792" or "1792x1024"
---@field input_reference? sora.ImageReference a reference image
---@field check_reference? boolean compare a file reference's dimensions with size before uploading (true)
---@field idempotency_key? string the Idempotency-Key of this call, sent on each of its attempts (default: 32 fresh random hex digits)
---@field reconcile? boolean look for the video before sending again after a lost answer (the client's: true)

---@class sora.ListParams: sora.RequestOptions
---@field after? string the id to list after
---@field limit? integer videos per page
---@field order? "asc"|"desc"

---@class sora.RemixParams: sora.RequestOptions
---@field prompt string
---@field idempotency_key? string the Idempotency-Key of this call, sent on each of its attempts (default: 32 fresh random hex digits)
---@field reconcile? boolean look for the video before sending again after a lost answer (the client's: true)

---@class sora.EditParams: sora.RequestOptions
---@field video sora.VideoReference
---@field prompt string
---@field idempotency_key? string the Idempotency-Key of this call, sent on each of its attempts (default: 32 fresh random hex digits)
---@field reconcile? boolean look for the video before sending again after a lost answer (the client's: true)

---@class sora.ExtendParams: sora.RequestOptions
---@field video sora.VideoReference
---@field prompt string
---@field seconds string|integer
---@field idempotency_key? string the Idempotency-Key of this call, sent on each of its attempts (default: 32 fresh random hex digits)
---@field reconcile? boolean look for the video before sending again after a lost answer (the client's: true)

---@class sora.CharacterParams: sora.RequestOptions
---@field video sora.VideoFile
---@field name string
---@field idempotency_key? string the Idempotency-Key of this call, sent on each of its attempts (default: 32 fresh random hex digits)
---@field reconcile? boolean look for the video before sending again after a lost answer (the client's: true)

---@alias sora.Variant "video"|"thumbnail"|"spritesheet"

---@class sora.DownloadOptions: sora.RequestOptions
---@field variant? sora.Variant what to download ("video")
---@field path? string stream into this file, replaced only when the whole body arrived
---@field sink? fun(chunk: string)|sora.Callable hand each chunk to this function
---@field on_progress? fun(received: integer, total: integer?)|sora.Callable follows the bytes
---@field durable? boolean sync the file and its directory around the rename (false)

---@class sora.WaitOptions
---@field timeout? number seconds in all (900)
---@field interval? number seconds between polls (the server's hint, else 1, growing)
---@field max_interval? number the longest pause between polls (8)
---@field on_progress? fun(video: sora.Video)|sora.Callable called after every poll

---@class sora.GenerateParams: sora.CreateParams
---@field output? string the file to download the video to
---@field variant? sora.Variant what to download ("video")
---@field interval? number
---@field max_interval? number
---@field on_progress? fun(video: sora.Video)|sora.Callable

---@class sora.BatchOptions
---@field concurrency? integer jobs at once (4)
---@field max_attempts? integer attempts of a job the server answers 429 (6)
---@field on_result? fun(i: integer, video: sora.Video|false, err: sora.Error?)|sora.Callable
---@field journal? string a JSON Lines journal, fsync'd record by record; a rerun resumes from it
---@field retry_failed? boolean run again the jobs the journal says failed (false)

-- ---- values --------------------------------------------------------------------------------

---@alias sora.Status "queued"|"in_progress"|"completed"|"failed"

--- A video: a read-only handle; fields the server adds are kept too.
---@class sora.Video
---@field id string
---@field object string "video"
---@field model string
---@field status sora.Status
---@field progress number 0 to 100
---@field created_at integer
---@field completed_at? integer
---@field expires_at? integer
---@field prompt? string
---@field size string
---@field seconds string
---@field remixed_from_video_id? string
---@field error? { code: string, message: string }
local Video = {}

--- Retrieves the video and updates this handle in place.
---@param opts? { with_response?: boolean }
---@return sora.Video|nil video, sora.Error|sora.Response|nil err_or_response
function Video:refresh(opts) end

--- Polls until the video completes (returns it) or fails or times out (nil, err).
---@param opts? sora.WaitOptions
---@return sora.Video|nil video, sora.Error? err
function Video:wait(opts) end

--- download_content for this video.
---@param opts? sora.DownloadOptions
---@return string|boolean|nil content, sora.Error|sora.Response|nil err_or_response
function Video:download(opts) end

---@param params sora.RemixParams
---@return sora.Video|nil video, sora.Error|sora.Response|nil err_or_response
function Video:remix(params) end

---@param opts? sora.RequestOptions
---@return sora.Deleted|nil deleted, sora.Error|sora.Response|nil err_or_response
function Video:delete(opts) end

--- Every field of the video, unknown ones included, in a plain table.
---@return table<string, any>
function Video:to_table() end

--- The HTTP answer that ended a call, returned beside its value with `with_response = true`.
---@class sora.Response
---@field status integer
---@field headers table<string, string> lower-case names; repeated headers joined with ", "
---@field request_id? string x-request-id
---@field elapsed number seconds from the first attempt's start to the last one's end
---@field attempts integer

---@class sora.Page
---@field object string "list"
---@field data sora.Video[]
---@field first_id? string
---@field last_id? string
---@field has_more boolean

---@class sora.Deleted
---@field id string
---@field object string "video.deleted"
---@field deleted boolean

---@class sora.Character
---@field id? string
---@field name string
---@field created_at integer

---@alias sora.ErrorKind "bad_request"|"authentication"|"permission_denied"|"not_found"|"conflict"|"unprocessable_entity"|"rate_limit"|"internal_server"|"api_status"|"connection"|"timeout"|"invalid_response"|"failed"|"aborted"|"io"|"webhook"

--- What a failed call returns as its second value; `tostring(err)` is one line.
---@class sora.Error
---@field kind sora.ErrorKind
---@field message string
---@field status? integer the HTTP status
---@field code? string
---@field type? string
---@field param? string
---@field request_id? string
---@field attempts? integer
---@field retry_after? number seconds the server asked to wait
---@field curl_code? string libcurl's name for a connection or timeout error, e.g. "COULDNT_CONNECT"
---@field video? sora.Video the video of a failed generation
---@field last_error? sora.Error the last transient error of a wait that timed out
---@field headers? table<string, string> the answer's headers, for every error that got an HTTP answer
---@field elapsed? number seconds the call took
---@field check? "headers"|"timestamp"|"signature"|"body" the check a webhook failed

--- A request in flight (what the endpoints start and then wait for).
---@class sora.Transfer
local Transfer = {}

---@return boolean
function Transfer:done() end

--- The request's value, or nil, err.
---@return any value, sora.Error? err
function Transfer:result() end

--- Drives the client until the request has finished; its value, or nil, err.
---@return any value, sora.Error? err
function Transfer:wait() end

--- Aborts the request.
function Transfer:cancel() end

--- A coroutine run by the client's scheduler (client:spawn).
---@class sora.Task
local Task = {}

---@return boolean
function Task:done() end

--- The function's results, or nil, err when it raised or was cancelled (kind "aborted").
---@return any ...
function Task:result() end

--- Cancels the task and its descendants; their transfers are aborted.
function Task:cancel() end

-- ---- the client ----------------------------------------------------------------------------

---@class sora.Client
local Client = {}

---@param params sora.CreateParams
---@return sora.Video|nil video, sora.Error|sora.Response|nil err_or_response
function Client:create(params) end

---@param id string
---@param opts? sora.RequestOptions
---@return sora.Video|nil video, sora.Error|sora.Response|nil err_or_response
function Client:retrieve(id, opts) end

--- One page of the list.
---@param params? sora.ListParams
---@return sora.Page|nil page, sora.Error|sora.Response|nil err_or_response
function Client:list_page(params) end

---@param id string
---@param opts? sora.RequestOptions
---@return sora.Deleted|nil deleted, sora.Error|sora.Response|nil err_or_response
function Client:delete(id, opts) end

---@param id string
---@param params sora.RemixParams
---@return sora.Video|nil video, sora.Error|sora.Response|nil err_or_response
function Client:remix(id, params) end

--- The bytes as a string; with `path` or `sink`, true.
---@param id string
---@param opts? sora.DownloadOptions
---@return string|boolean|nil content, sora.Error|sora.Response|nil err_or_response
function Client:download_content(id, opts) end

---@param params sora.EditParams
---@return sora.Video|nil video, sora.Error|sora.Response|nil err_or_response
function Client:edit(params) end

---@param params sora.ExtendParams
---@return sora.Video|nil video, sora.Error|sora.Response|nil err_or_response
function Client:extend(params) end

---@param params sora.CharacterParams
---@return sora.Character|nil character, sora.Error|sora.Response|nil err_or_response
function Client:create_character(params) end

---@param id string
---@param opts? sora.RequestOptions
---@return sora.Character|nil character, sora.Error|sora.Response|nil err_or_response
function Client:get_character(id, opts) end

--- Every video, page after page; a page that fails raises its error.
---@param params? sora.ListParams
---@return fun(): sora.Video?
function Client:list(params) end

--- Page after page; a page that fails raises its error.
---@param params? sora.ListParams
---@return fun(): sora.Page?
function Client:pages(params) end

--- Creates, then waits; wait_opts.timeout bounds the whole call.
---@param params sora.CreateParams
---@param wait_opts? sora.WaitOptions
---@return sora.Video|nil video, sora.Error? err
function Client:create_and_wait(params, wait_opts) end

--- Creates, waits and downloads to `output`; `timeout` bounds the whole call.
---@param params sora.GenerateParams
---@return sora.Video|nil video, sora.Error? err, sora.Video? video_on_failure
function Client:generate(params) end

--- Runs generate tables at most `concurrency` at a time; videos[i] is false for a failed job.
---@param jobs sora.GenerateParams[]
---@param opts? sora.BatchOptions
---@return (sora.Video|false)[] videos, table<integer, sora.Error> errors
function Client:generate_many(jobs, opts) end

--- Runs fn(...) as a task: inside it, sora calls yield instead of blocking.
---@param fn function|sora.Callable
---@param ... any
---@return sora.Task
function Client:spawn(fn, ...) end

--- Advances every transfer and task, waiting at most `timeout` seconds (0); the number of
--- tasks still running.
---@param timeout? number
---@return integer
function Client:step(timeout) end

--- Steps until every task has finished.
function Client:run() end

--- Waits `seconds` while driving the transfers (yields inside a task).
---@param seconds number
function Client:sleep(seconds) end

--- Aborts every transfer and cancels every task. Idempotent.
function Client:close() end

-- The host's event loop drives the client (docs/event-loop.md).

--- Lets the host's event loop drive the client: sora asks the host to watch descriptors
--- (`on_socket(fd, readable, writable)`, both false: stop) and to call `timeout_due` after
--- `on_timer(seconds)` (nil: no timer); `on_unwatch()` when the watch ends.
---@param on_socket fun(fd: integer, readable: boolean, writable: boolean)|sora.Callable
---@param on_timer fun(seconds: number?)|sora.Callable
---@param on_unwatch? fun()|sora.Callable
function Client:watch(on_socket, on_timer, on_unwatch) end

--- Ends the watch (idempotent); the client goes back to step.
function Client:unwatch() end

--- Whether a loop watches the client.
---@return boolean
function Client:watching() end

--- The host's loop saw `fd` ready; the number of tasks still running.
---@param fd integer
---@param readable boolean
---@param writable boolean
---@return integer
function Client:socket_ready(fd, readable, writable) end

--- The timer sora asked for came; the number of tasks still running.
---@return integer
function Client:timeout_due() end

--- The base URL, without userinfo.
---@return string
function Client:base_url() end

return sora
