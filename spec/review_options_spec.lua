-- Review of the C core: sora.new's string options are used as C strings (a header, the key, a
-- path, the URL); one holding NUL was silently cut there ("sk-a\0b" sent as "sk-a", a
-- ca_file "/x.pem\0y" read as "/x.pem"). It raises, naming the option, as CR and LF do.
local sora = require "sora"

describe("sora.new string options holding NUL", function()
  local cases = {
    { "api_key", { api_key = "sk-abcdefgh\0\r\nX-Evil: 1" } },
    { "organization", { api_key = "k", organization = "org\0\r\nX-Evil: 1" } },
    { "project", { api_key = "k", project = "proj\0x" } },
    { "base_url", { api_key = "k", base_url = "http://127.0.0.1:9/v1\0/evil" } },
    { "ca_file", { api_key = "k", ca_file = "/etc/ssl/certs/ca-certificates.crt\0x" } },
  }

  it("raise, naming the option", function()
    for _, case in ipairs(cases) do
      local ok, err = pcall(sora.new, case[2])
      assert.is_false(ok, case[1])
      assert.matches("bad argument #1 to 'new' (option '" .. case[1] .. "' contains NUL)", err, 1, true)
    end
  end)

  it("and the same text without the NUL is taken", function()
    local c = sora.new{ api_key = "sk-abcdefgh", organization = "org", project = "proj",
                        base_url = "http://127.0.0.1:9/v1" }
    assert.are.equal("http://127.0.0.1:9/v1", c:base_url())
    c:close()
  end)
end)
