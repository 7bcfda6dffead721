-- A busted output handler for choosing what the memory passes run (Makefile:
-- MEMORY_UNCHECKED_SPECS, MEMORY_CHILD_SPECS): busted's usual output, then one line per spec
-- file: its wall time and whether sora.core was loaded in the busted process by the end of any
-- of its tests ("core"), or never ("children": whatever the file did with the core, a child
-- process did it).
--
--   busted --run=default -o spec/support/inprocess.lua
--
-- The lines go to $INPROCESS_OUT when set (appended), else to stdout after the summary.
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local lines, started, loaded, current = {}, {}, {}, nil

  busted.subscribe({ "file", "start" }, function(file)
    current = file.name
    started[file.name] = busted.monotime()
    return nil, true
  end)
  -- Each file is insulated: what it loaded is unloaded when it ends, so look after each test.
  busted.subscribe({ "test", "end" }, function()
    if package.loaded["sora.core"] then loaded[current] = true end
    return nil, true
  end)
  busted.subscribe({ "file", "end" }, function(file)
    lines[#lines + 1] = string.format("%8.2f s  %-9s %s", busted.monotime() - started[file.name],
      loaded[file.name] and "core" or "children", file.name)
    return nil, true
  end)
  busted.subscribe({ "exit" }, function()
    local path = os.getenv("INPROCESS_OUT")
    local out = path and path ~= "" and assert(io.open(path, "a")) or io.stdout
    out:write("\n", table.concat(lines, "\n"), "\n")
    if out ~= io.stdout then out:close() end
    return nil, true
  end)
  return handler
end
