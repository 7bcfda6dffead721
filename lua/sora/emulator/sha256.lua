-- SHA-256 (FIPS 180-4) in pure Lua, for the emulator's content digests and
-- credential fingerprints.
--
--   local sha256 = require "sora.emulator.sha256"
--   sha256.hex("abc")                    --> "ba7816bf..."
--   local h = sha256.new(); h:update(a); h:update(b); h:hex()
--
-- The 32-bit word operations come from the fastest source the interpreter has:
-- integer operators on Lua 5.3+, LuaJIT's `bit`, 5.2's `bit32`, else arithmetic on
-- doubles (slow, but correct on plain Lua 5.1).

local sha256 = {}

local floor = math.floor
local byte, char, format = string.byte, string.char, string.format

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local H0 = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }

local W = {}   -- the message schedule, reused by every block

-- Each compress(h, s, i) mixes the 64-byte block of s starting at i into the state h (eight
-- words, kept in 0..2^32-1 between blocks).

-- Lua 5.3+: native integer operators, inlined. Compiled from a string so that older parsers
-- never see them. Intermediate values may carry bits above 32: they never reach a right
-- shift, and sums are masked.
local function integer_compress()
  if not math.type then return nil end
  local chunk = load([[
    local K, W, unpack = ...
    local M = 0xffffffff
    return function(h, s, i)
      W[1], W[2], W[3], W[4], W[5], W[6], W[7], W[8], W[9], W[10], W[11], W[12], W[13], W[14],
        W[15], W[16] = unpack(">I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4", s, i)
      for t = 17, 64 do
        local x, y = W[t - 15], W[t - 2]
        local s0 = ((x >> 7) | (x << 25)) ~ ((x >> 18) | (x << 14)) ~ (x >> 3)
        local s1 = ((y >> 17) | (y << 15)) ~ ((y >> 19) | (y << 13)) ~ (y >> 10)
        W[t] = (W[t - 16] + s0 + W[t - 7] + s1) & M
      end
      local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
      for t = 1, 64 do
        local S1 = ((e >> 6) | (e << 26)) ~ ((e >> 11) | (e << 21)) ~ ((e >> 25) | (e << 7))
        local t1 = hh + S1 + ((e & f) ~ (~e & g)) + K[t] + W[t]
        local S0 = ((a >> 2) | (a << 30)) ~ ((a >> 13) | (a << 19)) ~ ((a >> 22) | (a << 10))
        local t2 = S0 + ((a & b) ~ (a & c) ~ (b & c))
        hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & M, c, b, a, (t1 + t2) & M
      end
      h[1], h[2], h[3], h[4] = (h[1] + a) & M, (h[2] + b) & M, (h[3] + c) & M, (h[4] + d) & M
      h[5], h[6], h[7], h[8] = (h[5] + e) & M, (h[6] + f) & M, (h[7] + g) & M, (h[8] + hh) & M
    end]])
  return chunk and chunk(K, W, string.unpack)
end

-- The 32-bit operations of the other interpreters: LuaJIT's `bit` (signed results), 5.2's
-- `bit32`, else arithmetic on doubles, a byte at a time through lookup tables (slow, but
-- correct on plain Lua 5.1). Each gives band, bxor (2 or 3 arguments), bnot, ror, shr and
-- add32 (a sum folded into 32 bits).
local function luajit_ops()
  local ok, bit = pcall(require, "bit")
  if not ok or type(bit) ~= "table" or not bit.ror then return nil end
  local tobit = bit.tobit
  return { band = bit.band, bxor = bit.bxor, bnot = bit.bnot, ror = bit.ror, shr = bit.rshift,
    add32 = function(a, b, c, d, e) return tobit(a + b + (c or 0) + (d or 0) + (e or 0)) end }
end

local function bit32_ops()
  local b = rawget(_G, "bit32")
  if type(b) ~= "table" then return nil end
  return { band = b.band, bxor = b.bxor, bnot = b.bnot, ror = b.rrotate, shr = b.rshift,
    add32 = function(a, b2, c, d, e) return (a + b2 + (c or 0) + (d or 0) + (e or 0)) % 4294967296 end }
end

local function arithmetic_ops()
  local AND, XOR = {}, {}
  for a = 0, 255 do
    AND[a], XOR[a] = {}, {}
    for b = 0, 255 do
      local r_and, r_xor, bitv, x, y = 0, 0, 1, a, b
      for _ = 1, 8 do
        local p, q = x % 2, y % 2
        if p == 1 and q == 1 then r_and = r_and + bitv end
        if p ~= q then r_xor = r_xor + bitv end
        x, y, bitv = (x - p) / 2, (y - q) / 2, bitv * 2
      end
      AND[a][b], XOR[a][b] = r_and, r_xor
    end
  end
  local function bytewise(t, a, b)
    local r, m = 0, 1
    for _ = 1, 4 do
      local p, q = a % 256, b % 256
      r = r + t[p][q] * m
      a, b, m = (a - p) / 256, (b - q) / 256, m * 256
    end
    return r
  end
  return {
    band = function(a, b) return bytewise(AND, a, b) end,
    bxor = function(a, b, c)
      local r = bytewise(XOR, a, b)
      if c then r = bytewise(XOR, r, c) end
      return r
    end,
    bnot = function(a) return 4294967295 - a end,
    ror = function(a, n)
      local low = a % 2 ^ n
      return (a - low) / 2 ^ n + low * 2 ^ (32 - n)
    end,
    shr = function(a, n) return floor(a / 2 ^ n) end,
    add32 = function(a, b, c, d, e) return (a + b + (c or 0) + (d or 0) + (e or 0)) % 4294967296 end,
  }
end

-- compress on top of a set of 32-bit operations. With LuaJIT's signed words the state may
-- hold negative values; hex() normalises them.
local function generic_compress(ops)
  local band, bxor, bnot, ror, shr, add32 = ops.band, ops.bxor, ops.bnot, ops.ror, ops.shr,
    ops.add32
  return function(h, s, i)
    for t = 1, 16 do
      local a, b, c, d = byte(s, i, i + 3)
      W[t] = add32(((a * 256 + b) * 256 + c) * 256 + d, 0)
      i = i + 4
    end
    for t = 17, 64 do
      local x, y = W[t - 15], W[t - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), shr(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), shr(y, 10))
      W[t] = add32(W[t - 16], s0, W[t - 7], s1)
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for t = 1, 64 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = add32(hh, S1, ch, K[t], W[t])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      hh, g, f, e, d, c, b, a = g, f, e, add32(d, t1), c, b, a, add32(t1, S0, maj)
    end
    h[1], h[2], h[3], h[4] = add32(h[1], a), add32(h[2], b), add32(h[3], c), add32(h[4], d)
    h[5], h[6], h[7], h[8] = add32(h[5], e), add32(h[6], f), add32(h[7], g), add32(h[8], hh)
  end
end

local compress = integer_compress()
  or generic_compress(luajit_ops() or bit32_ops() or arithmetic_ops())

local Hash = {}
Hash.__index = Hash

-- Returns a fresh hash state.
function sha256.new()
  local h = {}
  for i = 1, 8 do h[i] = H0[i] end
  return setmetatable({ h = h, pending = "", length = 0 }, Hash)
end

-- Adds bytes to the message; returns the state, so calls chain.
function Hash:update(s)
  assert(not self.done, "sha256: update after digest")
  self.length = self.length + #s
  local data = self.pending .. s
  local whole = #data - #data % 64
  for i = 1, whole, 64 do compress(self.h, data, i) end
  self.pending = data:sub(whole + 1)
  return self
end

-- Big-endian 8-byte encoding of a bit count (exact on doubles up to 2^53).
local function length_bytes(bits)
  local out = {}
  for i = 8, 1, -1 do
    local b = bits % 256
    out[i] = char(b)
    bits = (bits - b) / 256
  end
  return table.concat(out)
end

-- Returns the digest as 64 lower-case hex digits; the state is finished after this.
function Hash:hex()
  if not self.digest then
    local tail = self.pending .. "\128"
    tail = tail .. string.rep("\0", (56 - #tail % 64) % 64) .. length_bytes(self.length * 8)
    for i = 1, #tail, 64 do compress(self.h, tail, i) end
    local words = {}
    for i = 1, 8 do words[i] = format("%08x", self.h[i] % 4294967296) end
    self.digest, self.done, self.pending = table.concat(words), true, ""
  end
  return self.digest
end

-- Returns the hex digest of a string.
function sha256.hex(s)
  return sha256.new():update(s):hex()
end

return sha256
