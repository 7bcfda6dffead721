-- sora.emulator.sha256: the FIPS 180-4 / NIST example vectors, streaming at every block
-- boundary, and agreement with the system's sha256sum on random data.

local sha256 = require "sora.emulator.sha256"

-- sha256sum's digest of a string, or nil when the tool is missing.
local function system_sha256(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local p = io.popen("sha256sum " .. path .. " 2>/dev/null")
  local line = p and p:read("*l")
  if p then p:close() end
  os.remove(path)
  return line and line:match("^(%x+)")
end

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

describe("sora.emulator.sha256", function()
  it("gives the FIPS 180-4 example digests", function()
    assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      sha256.hex("abc"))
    assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      sha256.hex(""))
    assert.are.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      sha256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
    assert.are.equal("cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
      sha256.hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
        .. "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"))
  end)

  it("hashes a million 'a's fed in uneven pieces", function()
    local h = sha256.new()
    local piece = string.rep("a", 999)
    local left = 1000000
    while left > 0 do
      local n = math.min(#piece, left)
      h:update(piece:sub(1, n))
      left = left - n
    end
    assert.are.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", h:hex())
    assert.are.equal(h:hex(), h:hex())      -- a finished state keeps its digest
    assert.has_error(function() h:update("x") end, "sha256: update after digest")
  end)

  it("agrees with sha256sum around every padding boundary, whole or streamed", function()
    math.randomseed(7)
    for _, n in ipairs{ 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 4099 } do
      local data = random_bytes(n)
      local whole = sha256.hex(data)
      local cut = math.random(0, n)
      local streamed = sha256.new():update(data:sub(1, cut)):update(data:sub(cut + 1)):hex()
      assert.are.equal(whole, streamed, "length " .. n)
      local expected = system_sha256(data)
      if expected then assert.are.equal(expected, whole, "length " .. n) end
    end
  end)

  it("hashes a megabyte fast enough to serve digests", function()
    local data = string.rep("0123456789abcdef", 65536)
    local t = os.clock()
    local digest = sha256.hex(data)
    print(string.format("\nsha256 (%s): %.1f MB/s", jit and jit.version or _VERSION,
      1 / math.max(os.clock() - t, 1e-6)))
    assert.are.equal(system_sha256(data) or digest, digest)
  end)
end)
