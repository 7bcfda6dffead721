-- luacheck configuration: `make lint` checks lua/, bin/, bench/, examples/ and spec/.
-- One standard for every Lua sora supports: what 5.1 through 5.4 and LuaJIT all define.
std = "max"
-- Long lines are a matter for review, not for the linter: only absurd ones are flagged.
max_line_length = 160
-- Callbacks and handlers share signatures: an argument left unused is not a mistake.
unused_args = false

files["spec"] = { std = "+busted" }
-- Neovim's API, for the plugin, its health check and the headless test harness.
-- (`globals`: options such as vim.o.statusline and vim.notify are assigned to.)
for _, path in ipairs{ "lua/sora/health.lua", "lua/sora/nvim", "plugin", "examples/nvim",
                       "spec/support/nvim_harness.lua", "spec/support/nvim_session.lua",
                       "spec/support/loop_nvim.lua" } do
  files[path] = { globals = { "vim" } }
end
-- LÖVE's callbacks are globals in love.* by design.
files["examples/love"] = { globals = { "love" } }
-- spec/support/gcstress.lua replaces coroutine.create/wrap on purpose (the collector runs at
-- every resume).
files["spec/support/gcstress.lua"] = { globals = { "coroutine" } }
-- Specs assign results they only sometimes inspect, and read the first page with a loop that
-- breaks at once: neither is a defect in a test.
files["spec"].ignore = { "311", "312", "314", "331", "421", "431", "512" }
-- The LuaLS meta file declares tables and functions that nothing runs; its alias lines are
-- as long as the unions they spell out.
files["lua/sora/_meta.lua"] = { ignore = { "241" }, max_line_length = false }
