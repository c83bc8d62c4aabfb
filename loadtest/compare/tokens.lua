-- compare.sh's wrk load (GENERATOR=wrk): each request carries the next of the tokens file's
-- Authorization values, as warden-loadtest's rotation does. Requests are formatted once, at
-- start, so the per-request cost is a table lookup. Usage: wrk ... -s tokens.lua URL -- TOKENS
local threads = 0

function setup(thread)
  -- Threads start at different tokens rather than in step.
  thread:set("offset", threads * 500)
  threads = threads + 1
end

function init(args)
  reqs = {}
  for line in io.lines(args[1]) do
    reqs[#reqs + 1] = wrk.format("GET", "/", {["Host"] = "app.compare.test", ["Authorization"] = line})
  end
  i = (offset or 0) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
