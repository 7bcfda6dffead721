#!/bin/sh
# Regenerates the emulator's served media and the test fixtures with ffmpeg.
# Run once from a checkout (the outputs are committed): sh tools/make-media.sh
# Every file is tiny on purpose: the emulator serves real, playable media, not
# realistic sizes; solid colours and small frames keep the repository light.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
media="$root/lua/sora/emulator/media"
fixtures="$root/spec/fixtures"
mkdir -p "$media" "$fixtures"
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# Served by GET /videos/{id}/content: a 4 s moving test pattern (H.264, yuv420p so
# every player accepts it, faststart so it plays while downloading), a WebP
# thumbnail and a JPEG spritesheet of 8 frames.
ff -f lavfi -i "testsrc2=size=160x90:rate=12:duration=4" \
   -c:v libx264 -preset veryslow -crf 36 -pix_fmt yuv420p -movflags +faststart \
   "$media/video.mp4"
ff -f lavfi -i "testsrc2=size=160x90:rate=1:duration=1" -frames:v 1 \
   -c:v libwebp -quality 60 "$media/thumbnail.webp"
ff -f lavfi -i "testsrc2=size=80x45:rate=2:duration=4" \
   -vf "tile=4x2" -frames:v 1 -q:v 8 "$media/spritesheet.jpg"

# Input references for the specs: the pixel sizes matter, the content does not.
ff -f lavfi -i "color=c=navy:size=1280x720" -frames:v 1 "$fixtures/ref-1280x720.png"
ff -f lavfi -i "color=c=teal:size=720x1280" -frames:v 1 "$fixtures/ref-720x1280.png"
ff -f lavfi -i "color=c=maroon:size=1280x720" -frames:v 1 -q:v 20 "$fixtures/ref-1280x720.jpg"
ff -f lavfi -i "color=c=olive:size=1280x720" -frames:v 1 -c:v libwebp -lossless 1 \
   "$fixtures/ref-1280x720.webp"
# The README's tour sends this one as create's input_reference (size 1280x720).
cp "$fixtures/ref-1280x720.png" "$root/examples/boat.png"
# A source clip for edits, extensions and characters.
ff -f lavfi -i "testsrc2=size=64x36:rate=5:duration=1" \
   -c:v libx264 -crf 40 -pix_fmt yuv420p "$fixtures/clip.mp4"
printf 'This is plain text, not an image.\n' > "$fixtures/not-an-image.txt"
ls -l "$media" "$fixtures" "$root/examples/boat.png"
