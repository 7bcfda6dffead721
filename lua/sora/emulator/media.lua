-- Media sniffing: what a byte string really is, and the pixel size of images.
-- Uploads are judged by their bytes, not their names or declared types, as the
-- real API does. Only headers are read, so this is cheap on large uploads.

local media = {}

local function u16be(s, i) local a, b = s:byte(i, i + 1); return a * 256 + b end
local function u16le(s, i) local a, b = s:byte(i, i + 1); return b * 256 + a end
local function u24le(s, i) local a, b, c = s:byte(i, i + 2); return (c * 256 + b) * 256 + a end
local function u32be(s, i) return u16be(s, i) * 65536 + u16be(s, i + 2) end

-- Returns the MIME type of an image ("image/png", "image/jpeg", "image/webp") or nil.
function media.image_type(data)
  if data:sub(1, 8) == "\137PNG\r\n\26\n" then return "image/png" end
  if data:sub(1, 3) == "\255\216\255" then return "image/jpeg" end
  if data:sub(1, 4) == "RIFF" and data:sub(9, 12) == "WEBP" then return "image/webp" end
  return nil
end

-- Returns the MIME type of a video ("video/mp4", "video/quicktime", "video/webm") or nil.
function media.video_type(data)
  if data:sub(1, 4) == "\26\69\223\163" then return "video/webm" end   -- EBML header
  local box = data:sub(5, 8)
  if box == "ftyp" then
    return data:sub(9, 12) == "qt  " and "video/quicktime" or "video/mp4"
  end
  -- Old QuickTime files may start with any top-level atom.
  if box == "moov" or box == "mdat" or box == "wide" or box == "free" then
    return "video/quicktime"
  end
  return nil
end

local function png_size(data)
  if #data < 24 or data:sub(13, 16) ~= "IHDR" then return nil end
  return u32be(data, 17), u32be(data, 21)
end

-- Walks JPEG segments to the first start-of-frame marker, which holds the size.
local function jpeg_size(data)
  local i = 3
  while i + 8 <= #data do
    local ff, marker = data:byte(i, i + 1)
    if ff ~= 0xFF then return nil end
    if marker == 0xFF then
      i = i + 1                                  -- fill byte
    elseif marker == 0xD8 or marker == 0x01 or (marker >= 0xD0 and marker <= 0xD7) then
      i = i + 2                                  -- markers without a length
    else
      local sof = marker >= 0xC0 and marker <= 0xCF
        and marker ~= 0xC4 and marker ~= 0xC8 and marker ~= 0xCC
      if sof then return u16be(data, i + 7), u16be(data, i + 5) end
      i = i + 2 + u16be(data, i + 2)
    end
  end
  return nil
end

local function webp_size(data)
  local chunk = data:sub(13, 16)
  if chunk == "VP8 " and #data >= 30 then
    return u16le(data, 27) % 16384, u16le(data, 29) % 16384
  elseif chunk == "VP8L" and #data >= 25 then
    local b1, b2, b3, b4 = data:byte(22, 25)
    local bits = ((b4 * 256 + b3) * 256 + b2) * 256 + b1
    return bits % 16384 + 1, math.floor(bits / 16384) % 16384 + 1
  elseif chunk == "VP8X" and #data >= 30 then
    return u24le(data, 25) + 1, u24le(data, 28) + 1
  end
  return nil
end

-- Returns width, height of a PNG, JPEG or WebP image, or nil when unreadable.
function media.image_size(data)
  local kind = media.image_type(data)
  if kind == "image/png" then return png_size(data) end
  if kind == "image/jpeg" then return jpeg_size(data) end
  if kind == "image/webp" then return webp_size(data) end
  return nil
end

return media
