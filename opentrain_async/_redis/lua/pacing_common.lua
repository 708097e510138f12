-- Shared pacing: helpers prepended to pacing_reserve and pacing_report (see
-- opentrain_async/_redis/scripts.py).  ARGV[1] = sample buckets, ARGV[2] = bucket seconds.
local NB = tonumber(ARGV[1])
local S = tonumber(ARGV[2])
local function list(v)
  local t = {}
  if v then for x in string.gmatch(v, '[^,]+') do t[#t + 1] = tonumber(x) end end
  while #t < NB do t[#t + 1] = 0 end
  return t
end
local function fmt(x) return string.format('%.17g', x) end
-- curve.quiet_probe: a curve with no cut for QUIET_AFTER of its recovery climbs past its
-- limit by one request per round trip of the cut's 429 (trip) each round trip, gaining at
-- most the limit per QUIET_DOUBLING seconds; never a window's (window_hint, win_size),
-- and only when the cut's 429 took QUIET_TRIP seconds or more, no wall was seen (walls),
-- no exact hint came (hint_max) and the curve has been cut QUIET_CUTS times or fewer.
local QUIET_AFTER, QUIET_DOUBLING, QUIET_TRIP, QUIET_CUTS = 0.5, 0.5, 0.05, 3
local function quiet_probe(limit, trip, window_hint, win_size, walls, hint_max, cuts, dt,
    recover)
  if trip < QUIET_TRIP or window_hint > 0 or win_size > 0 or limit == nil then return 0 end
  if walls > 0 or hint_max > 0 or cuts > QUIET_CUTS then return 0 end
  local quiet = dt - QUIET_AFTER * recover
  if quiet <= 0 then return 0 end
  return limit + math.min(1 / trip ^ 2, limit / QUIET_DOUBLING) * quiet
end
