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
