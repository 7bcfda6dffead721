/* What a finished transfer ends with, as Lua values: the typed result of a success, or a
 * sora.Error that says what went wrong (the API's own message when it gave one). */
#include <string.h>

#include "sora.h"

static int is_success(long status) { return status >= 200 && status < 300; }

/* The client's key: a server may echo it back in anything it sends. */
static const char *api_key(const sora_transfer *t) { return t->client ? t->client->api_key : NULL; }

/* The error object, with the request id and, after retries, how many attempts were made. The
 * request id was redacted when it was read; the message is redacted here whatever built it. */
static void push_failure(lua_State *L, sora_transfer *t, const char *kind, const char *message) {
  message = sora_push_redacted(L, message, strlen(message), api_key(t));
  if (t->attempts > 1) {
    message = lua_pushfstring(L, "%s (after %d attempts)", message, t->attempts);
    lua_remove(L, -2);
  }
  sora_push_error(L, kind, t->status, message);
  lua_remove(L, -2);
  if (t->request_id[0]) {
    lua_pushstring(L, t->request_id);
    lua_setfield(L, -2, "request_id");
  }
  lua_pushinteger(L, t->attempts);
  lua_setfield(L, -2, "attempts");
  if (t->maybe_sent) { /* a create that may have been made: reconcile.lua looks for it */
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "maybe_sent");
  }
  if (sora_transfer_server_delay(t) >= 0) { /* for callers that pace themselves */
    lua_pushnumber(L, sora_transfer_server_delay(t));
    lua_setfield(L, -2, "retry_after");
  }
  sora_add_response_fields(L, t, -1); /* elapsed; the headers of an HTTP answer */
}

static void push_transport_error(lua_State *L, sora_transfer *t) {
  const char *detail = t->curl_message[0] ? t->curl_message : curl_easy_strerror(t->code);
  int timed_out = t->code == CURLE_OPERATION_TIMEDOUT;
  t->status = 0; /* whatever arrived, the call ended without an answer: no status, no headers */
  lua_pushfstring(L, "%s %s: %s", t->endpoint->method, t->endpoint->name, detail);
  push_failure(L, t, timed_out ? "timeout" : "connection", lua_tostring(L, -1));
  lua_remove(L, -2);
  sora_push_curl_code(L, t->code); /* libcurl's own name, e.g. COULDNT_CONNECT */
  lua_setfield(L, -2, "curl_code");
}

static void push_io_error(lua_State *L, sora_transfer *t) {
  lua_pushfstring(L, "cannot write '%s': %s", t->path ? t->path : "response", sora_download_error(t));
  push_failure(L, t, "io", lua_tostring(L, -1));
  lua_remove(L, -2);
}

/* A printable excerpt of a body that is not the JSON we wanted, cut after the key is redacted
 * (a cut first could leave a piece of the key that no longer matches it). */
static void push_excerpt(lua_State *L, sora_transfer *t, const char *body, size_t len) {
  luaL_Buffer b;
  size_t i;
  body = sora_push_redacted(L, body, len, api_key(t));
  len = sora_rawlen(L, -1);
  if (len > 120) len = 120;
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)body[i];
    luaL_addchar(&b, ch >= 32 && ch < 127 ? (char)ch : ' ');
  }
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

/* OpenAI answers a path it does not serve with 404 "Invalid URL (POST /videos)": when the base
 * URL's path does not end in /v1 (the usual cause: "https://api.openai.com"), the message says
 * so and what to try. The prefix has no userinfo and no query (url.c). Returns the message,
 * perhaps a new one pushed on the stack. */
static const char *with_base_url_hint(lua_State *L, sora_transfer *t, const char *message) {
  const char *prefix = t->client->base.prefix;
  size_t len = prefix ? strlen(prefix) : 0;
  if (t->status != 404 || strncmp(message, "Invalid URL (", 13) != 0 || len == 0) return message;
  if (len >= 3 && strcmp(prefix + len - 3, "/v1") == 0) return message;
  return lua_pushfstring(L, "%s (base_url %s does not end in /v1: try %s/v1)", message, prefix, prefix);
}

/* The API's {"error": {message, type, param, code}}, or a message made from the status. */
static void push_http_error(lua_State *L, sora_transfer *t) {
  sora_buffer *body = &t->handle->response;
  int top = lua_gettop(L);
  const char *kind = sora_error_kind(t->status);
  if (sora_json_try_decode(L, body->data ? body->data : "", body->len) && lua_istable(L, -1)) {
    sora_redact_tree(L, -1, api_key(t)); /* message, code, type, param... */
    lua_getfield(L, -1, "error");
    if (lua_istable(L, -1)) {
      const char *fields[] = {"type", "param", "code", NULL};
      int i, detail = lua_gettop(L);
      lua_getfield(L, detail, "message");
      push_failure(L, t, kind, lua_isstring(L, -1) ? with_base_url_hint(L, t, lua_tostring(L, -1))
                                                    : "(no message)");
      for (i = 0; fields[i]; i++) {
        lua_getfield(L, detail, fields[i]);
        if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, -2, fields[i]);
        else lua_pop(L, 1);
      }
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      return;
    }
  }
  lua_settop(L, top);
  push_excerpt(L, t, body->data ? body->data : "", body->len);
  lua_pushfstring(L, "HTTP %d from %s%s%s", (int)t->status, t->endpoint->name,
                  body->len ? ": " : "", lua_tostring(L, -1));
  push_failure(L, t, kind, lua_tostring(L, -1));
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

static void push_invalid(lua_State *L, sora_transfer *t, const char *why) {
  lua_pushfstring(L, "invalid response to %s (%s): %s", t->endpoint->name,
                  t->content_type[0] ? t->content_type : "no content type", why);
  push_failure(L, t, "invalid_response", lua_tostring(L, -1));
  lua_remove(L, -2);
}

/* Whether a string decoded from the body may hold the key: only if the body has it as it is,
 * or has an escape (\uXXXX, \/...) that could spell it otherwise. Most bodies have neither,
 * and then the walk over every decoded string (a tenth of a listed video's cost) is skipped. */
static int may_hold_key(const sora_buffer *body, const char *key) {
  return body->data != NULL && body->len > 0 && (memchr(body->data, '\\', body->len) != NULL ||
                           sora_has_key(body->data, body->len, key));
}

/* Pushes the value of a successful response, or an error object; returns 1 for a value. */
static int push_success(lua_State *L, sora_transfer *t, int transfer_idx) {
  sora_buffer *body = &t->handle->response;
  int slot = lua_gettop(L) + 1, ok; /* where the value (or error) ends up */
  if (t->endpoint->result == SORA_RESULT_CONTENT) {
    if (t->sink == SORA_SINK_STRING) lua_pushlstring(L, t->content.data ? t->content.data : "", t->content.len);
    else lua_pushboolean(L, 1);
    return 1;
  }
  ok = sora_json_try_decode(L, body->data ? body->data : "", body->len);
  if (ok) {
    if (may_hold_key(body, api_key(t))) sora_redact_tree(L, slot, api_key(t)); /* every string */
    sora_push_slot(L, transfer_idx, SORA_SLOT_CLIENT);
    ok = sora_marshal(L, t->endpoint->result, slot, slot + 1, t->poll_after_ms);
  } else {
    lua_pushfstring(L, "malformed JSON (%s)", lua_tostring(L, -1));
  }
  if (!ok) {
    t->maybe_sent = sora_is_create_type(t->endpoint); /* a 2xx to a create: something was made */
    push_invalid(L, t, lua_tostring(L, -1));           /* the message is on top */
  }
  lua_replace(L, slot);
  lua_settop(L, slot);
  return ok;
}

static void push_outcome(lua_State *L, sora_transfer *t, int transfer_idx) {
  if (t->cancelled) {
    t->status = 0; /* whatever arrived, the call did not end with it */
    lua_pushnil(L);
    lua_pushfstring(L, "%s was aborted: the transfer was cancelled or its client closed", t->endpoint->name);
    push_failure(L, t, "aborted", lua_tostring(L, -1));
    lua_remove(L, -2);
  } else if (t->io_errno) {
    lua_pushnil(L);
    push_io_error(L, t);
  } else if (t->invalid) {
    lua_pushnil(L);
    push_invalid(L, t, t->invalid);
  } else if (t->bad_range) {
    lua_pushnil(L);
    lua_pushfstring(L, "the download broke off at byte %f and the server did not resume it there",
                    (lua_Number)t->resume_from);
    push_invalid(L, t, lua_tostring(L, -1));
    lua_remove(L, -2);
  } else if (t->code != CURLE_OK) {
    lua_pushnil(L);
    push_transport_error(L, t);
  } else if (!is_success(t->status)) {
    lua_pushnil(L);
    push_http_error(L, t);
  } else if (t->endpoint->result == SORA_RESULT_CONTENT && !sora_download_whole(t)) {
    lua_pushnil(L);
    push_invalid(L, t, "the body is shorter than its Content-Length");
  } else if (push_success(L, t, transfer_idx)) {
    if (t->with_response) sora_push_response(L, t); /* value, response */
    else lua_pushnil(L);
  } else {
    lua_pushnil(L);
    lua_insert(L, -2);
  }
}

/* Raises what a callback of t raised, if one did. */
static void raise_callback_error(lua_State *L, sora_transfer *t, int transfer_idx) {
  sora_push_slot(L, transfer_idx, SORA_SLOT_RAISED);
  if (lua_toboolean(L, -1)) {
    sora_transfer_unlink(t);
    sora_push_slot(L, transfer_idx, SORA_SLOT_RAISE); /* what the callback raised, nil too */
    lua_error(L);
  }
  lua_pop(L, 1);
}

/* The transfer at transfer_idx, which its caller checked, once it is done. */
static sora_transfer *done_transfer(lua_State *L, int transfer_idx) {
  sora_transfer *t = lua_touserdata(L, transfer_idx);
  /* at the program's line: the call may run pinned, under a pcall (transfer.c) */
  if (t->state != SORA_STATE_DONE) sora_raise(L, "sora: the transfer has not finished");
  raise_callback_error(L, t, transfer_idx);
  return t;
}

/* Converts the response once, keeps the values in the user value, and gives the handle back.
 * Pushes value, err (one of them nil); raises what a callback raised. */
int sora_transfer_result(lua_State *L, int transfer_idx) {
  sora_transfer *t;
  transfer_idx = sora_absindex(L, transfer_idx);
  t = done_transfer(L, transfer_idx);
  sora_push_slot(L, transfer_idx, SORA_SLOT_DONE);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    push_outcome(L, t, transfer_idx);
    sora_transfer_unlink(t);
    lua_pushvalue(L, -1);
    sora_set_slot(L, transfer_idx, SORA_SLOT_ERR);
    lua_pushvalue(L, -2);
    sora_set_slot(L, transfer_idx, SORA_SLOT_RESULT);
    lua_pushboolean(L, 1);
    sora_set_slot(L, transfer_idx, SORA_SLOT_DONE);
    return 2;
  }
  lua_pop(L, 1);
  sora_push_slot(L, transfer_idx, SORA_SLOT_RESULT);
  sora_push_slot(L, transfer_idx, SORA_SLOT_ERR);
  return 2;
}

int sora_transfer_take_result(lua_State *L, int transfer_idx) {
  sora_transfer *t;
  transfer_idx = sora_absindex(L, transfer_idx);
  t = done_transfer(L, transfer_idx);
  push_outcome(L, t, transfer_idx);
  sora_transfer_unlink(t);
  return 2;
}
