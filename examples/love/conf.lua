-- LÖVE 11 configuration of the sora example game (see main.lua).
function love.conf(t)
  t.identity = "sora-love"
  t.version = "11.4"
  t.window.title = "sora: a video generates while the game runs"
  t.window.width, t.window.height = 640, 360
  t.window.vsync = 1
  -- The game makes no sound: without these modules it starts on a machine with no audio
  -- device (a CI runner under xvfb) without OpenAL complaining.
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
end
