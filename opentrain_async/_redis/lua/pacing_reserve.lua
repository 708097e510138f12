-- Shared pacing, reserve (after pacing_common).  KEYS: the state hash.
-- ARGV = NB, S, count, successes, cap ('' none), beta, recover, doubling,
-- tolerance, horizon, ttl_ms, idle_after, ANSWER_WAIT, LATE.  Returns strings {now, first,
-- interval, n, rate ('' none), cuts, pause_until, until ('' none), probe_at ('' none)}.
-- Mirrors _pacing/backend.py apply_reserve (and allowance.reserve_window for a window's W
-- at each reset, sounding.grant_probe and next_probe for its wall's probes); a test
-- (tests/test_pacing_redis.py) holds the two to the same answers over random states.
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local count = math.max(1, tonumber(ARGV[3]))
local successes = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local beta, recover0, doubling = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local tolerance, horizon = tonumber(ARGV[9]), tonumber(ARGV[10])
local idle_after = tonumber(ARGV[12])
local f = redis.call('HMGET', key, 'limit', 'searching', 'origin', 'recover', 'tat',
  'pause_until', 'sample_at', 'accepted', 'offered', 'successes', 'streak', 'cuts',
  'window_hint', 'throttles', 'win_size', 'win_opened', 'win_base', 'win_throttles',
  'win_sent', 'win_granted', 'win_probed', 'win_reset', 'win_first', 'win_last', 'win_stretch',
  'snd_low', 'snd_high', 'snd_left', 'snd_out', 'win_ramp', 'win_span', 'win_behind',
  'win_claim', 'trip', 'walls', 'hint_max')
local limit = tonumber(f[1])
local searching = f[2] ~= '0'
local origin = tonumber(f[3]) or 0
local recover = tonumber(f[4]) or 0
local tat = tonumber(f[5]) or -math.huge
local pause_until = tonumber(f[6]) or 0
local sample_at = tonumber(f[7]) or 0
local accepted, offered = list(f[8]), list(f[9])
local total = tonumber(f[10]) or 0
local streak = tonumber(f[11]) or 0
local cuts = tonumber(f[12]) or 0
local window_hint, throttles = tonumber(f[13]) or 0, tonumber(f[14]) or 0
local NEG = -math.huge
local w = {size = tonumber(f[15]) or 0, opened = tonumber(f[16]) or NEG,
  base = tonumber(f[17]) or 0, throttles = tonumber(f[18]) or 0, sent = tonumber(f[19]) or 0,
  granted = tonumber(f[20]) or NEG, probed = tonumber(f[21]) or 0,
  reset = tonumber(f[22]) or NEG, first = tonumber(f[23]) or math.huge,
  last = tonumber(f[24]) or NEG, stretch = tonumber(f[25]) or 0,
  ramp = tonumber(f[30]) or 0, span = tonumber(f[31]) or 0, behind = tonumber(f[32]) or 0,
  claim = tonumber(f[33]) or NEG}
local trip, walls = tonumber(f[34]) or 0, tonumber(f[35]) or 0
local hint_max = tonumber(f[36]) or 0

local function record(at, acc, off)
  local bucket = math.floor(at / S) * S
  local shift = math.floor((bucket - sample_at) / S + 0.5)
  if shift >= NB then
    accepted, offered = list(nil), list(nil)
    sample_at = bucket
  elseif shift > 0 then
    for i = 1, NB do
      accepted[i] = accepted[i + shift] or 0
      offered[i] = offered[i + shift] or 0
    end
    sample_at = bucket
  end
  accepted[NB] = accepted[NB] + acc
  offered[NB] = offered[NB] + off
end

if successes > 0 then
  record(now, successes, 0)
  total = total + successes
  streak = 0
end

-- allowance.reserve_window: a window's W at each reset, shared; past W one probe
if window_hint > 0 and limit ~= nil and cap == nil then
  local answer_wait = tonumber(ARGV[13])
  local function open(at)  -- allowance._open
    local old_size = w.size
    local kept = math.min(w.sent - (throttles - w.throttles), w.size)  -- not refused
    local accepted = math.max(total - w.base, kept)
    if accepted > 0 then w.size = accepted end
    -- W's own sends refused: the window freed its slots over its first to last success
    if throttles - w.throttles > math.max(w.sent - old_size, 0) and w.last > w.first
        and w.opened > NEG then
      w.stretch = w.last - w.first
    end
    w.stretch = math.min(w.stretch, window_hint / 2)
    if w.opened == NEG and at > w.last and w.last > w.first then  -- slow start's ramp
      w.ramp, w.span = math.min(w.last - w.first, window_hint / 2), at - w.first
    end
    w.opened, w.base, w.throttles, w.sent, w.behind, w.claim = at, total, throttles, 0, 0, NEG
    w.first, w.last = math.huge, NEG
  end
  local function last_reset(reset, at)  -- allowance._last_reset
    local periods = (at - reset) / window_hint
    if periods < 1e15 then return reset + math.floor(periods) * window_hint end
    return at
  end
  -- sounding.grant_probe / next_probe: a wall's pause ending at a reset, sounded by
  -- one probe at a time for every process on the state
  local late = tonumber(ARGV[14])
  local snd = {low = tonumber(f[26]) or NEG, high = tonumber(f[27]) or NEG,
    left = tonumber(f[28]) or 0, out = tonumber(f[29]) or NEG}
  local function probe_due()  -- sounding.probe_due
    if snd.left <= 0 or snd.high <= now or now - snd.out < answer_wait then return nil end
    local point = snd.low + (snd.high - snd.low) / (snd.left + 1)
    local ahead = math.floor(point - now + late)
    if ahead < 1 then return nil end
    return point - ahead
  end
  local ends = ''  -- allowance.window_end: no slot of the window goes after it
  local probe_at = ''
  if w.reset == pause_until and pause_until > now + horizon then
    local due = probe_due()
    if due ~= nil and due <= now then  -- the probe, this reservation's alone
      redis.call('HSET', key, 'successes', total, 'streak', streak,
        'sample_at', fmt(sample_at), 'accepted', table.concat(accepted, ','),
        'offered', table.concat(offered, ','), 'snd_out', fmt(now))
      redis.call('HINCRBY', key, 'v', 1)
      redis.call('PEXPIRE', key, tonumber(ARGV[11]))
      if w.size > 0 and w.opened > NEG then ends = fmt(w.opened + window_hint) end
      return {fmt(now), fmt(now), fmt(0), 1, fmt(limit), cuts, fmt(pause_until), ends, fmt(now)}
    end
    if due ~= nil then probe_at = fmt(due)
    elseif snd.left > 0 and snd.high > now and now - snd.out < answer_wait then
      probe_at = fmt(snd.out + answer_wait)  -- a probe out: its lease's end
    end
  end
  local at = math.max(now, pause_until)
  local first, n = at, 0
  if at <= now + horizon then
    if w.opened < w.reset and w.reset <= at then
      w.reset = last_reset(w.reset, at)  -- a reset long past: the window of now
      open(w.reset)
    elseif w.size > 0 and w.opened > NEG and w.opened <= at - window_hint then  -- _reset_unseen
      local missing = w.sent - ((total - w.base) + throttles - w.throttles)
      if w.granted < w.opened then missing = 0 end  -- it granted none: all carried
      local size = w.size
      open(last_reset(w.opened, at))
      w.size, w.sent = size, math.max(missing, 0)
    end
    if w.size > 0 and w.sent > w.size and total > w.probed then  -- room past W
      w.size = 2 * w.size
    end
    if w.size == 0 then n = count
    elseif w.sent < w.size then
      n = math.min(count, w.size - w.sent)
      local stretch = math.min(w.stretch, window_hint / 2)  -- as open caps it
      -- allowance._spread: W over the stretch (not from a window opened ahead: clock back)
      if stretch > 0 and w.opened > NEG and w.opened <= at + horizon then
        -- a slot-wait 429's shift, at most the window (negative, corrupt: none)
        local start = w.opened + math.min(math.max(w.behind, 0), window_hint)
        local due = start + stretch * w.sent / w.size
        if due > at + horizon then
          first, n = due, 0
        else
          first = math.max(at, due)
          local last = math.min(w.size - 1,
            math.floor(math.min((first - start) * w.size / stretch, w.size) + 1e-9))
          n = math.min(count, math.max(last - w.sent + 1, 1))
        end
      end
    else
      local missing = w.sent - ((total - w.base) + throttles - w.throttles)
      if missing > 0 and now - w.granted >= 0 and now - w.granted < answer_wait then
        first = now + 2 * horizon  -- the probe waits for answers: ask again
      else
        missing = math.max(missing, 0)
        if w.sent == w.size then  -- missing at the first probe: may yet be successes
          w.probed = total + missing
        else  -- missing after it: lost, written off (their share goes again)
          w.sent, w.probed = w.sent - missing, total
        end
        n = 1
        if w.sent < w.size then n = math.min(count, w.size - w.sent) end
      end
    end
    if n > 0 then
      w.sent, w.granted = w.sent + n, now
      record(now, 0, n)
    end
  end
  redis.call('HSET', key, 'successes', total, 'streak', streak, 'sample_at', fmt(sample_at),
    'accepted', table.concat(accepted, ','), 'offered', table.concat(offered, ','),
    'win_size', w.size, 'win_opened', fmt(w.opened), 'win_base', w.base,
    'win_throttles', w.throttles, 'win_sent', w.sent, 'win_granted', fmt(w.granted),
    'win_probed', w.probed, 'win_reset', fmt(w.reset), 'win_first', fmt(w.first),
    'win_last', fmt(w.last), 'win_stretch', fmt(w.stretch), 'win_ramp', fmt(w.ramp),
    'win_span', fmt(w.span), 'win_behind', fmt(w.behind), 'win_claim', fmt(w.claim))
  redis.call('HINCRBY', key, 'v', 1)
  redis.call('PEXPIRE', key, tonumber(ARGV[11]))
  if w.size > 0 and w.opened > NEG then ends = fmt(w.opened + window_hint) end
  if n > 0 then probe_at = '' end
  return {fmt(now), fmt(first), fmt(0), n, fmt(limit), cuts, fmt(pause_until), ends, probe_at}
end

-- schedule.restart_if_idle: a late schedule catches up by tolerance at most; an idle
-- one restarts at now, its curve frozen meanwhile (curve.freeze)
local function freeze(b, e)
  local stalled = e - math.max(b, origin)
  if stalled > 0 and limit ~= nil then origin = origin + stalled end
end
local lag = now - tat
if lag > tolerance then
  if lag < idle_after then
    freeze(tat, now - tolerance)
    tat = now - tolerance
  else
    freeze(math.max(tat, pause_until), now)
    tat = now
  end
end

-- curve.rate
local rate = nil
if limit ~= nil then
  local dt = math.max(now - origin, 0)
  if searching then  -- curve.search_period
    rate = limit * 2 ^ math.min(dt / math.max(recover, doubling), 30)
  else
    local r = recover
    if r == 0 then r = recover0 end
    dt = math.min(dt, 60)
    if dt <= 2 * r then
      rate = limit * (1 + (1 - beta) / r ^ 3 * (dt - r) ^ 3)
    else
      rate = limit * (2 - beta) * 2 ^ math.min((dt - 2 * r) / doubling, 30)
    end
    local quiet = quiet_probe(limit, trip, window_hint, w.size, walls, hint_max, cuts, dt, r)
    rate = math.max(rate, quiet)
  end
end
if cap ~= nil and (rate == nil or cap < rate) then rate = cap end

local first, n, interval = math.max(now, pause_until), count, 0
if rate ~= nil then
  interval = 1 / rate
  -- strict (a stated limit decides): late slots catch up one interval at most
  local tol = tolerance
  if cap ~= nil and rate == cap then tol = math.min(tolerance, interval) end
  local start = math.max(tat, pause_until, now - tol)
  first = start
  n = 0
  -- schedule.reserve_slots: nothing held beyond the horizon (ask again by then)
  if start <= now + horizon then
    n = math.min(count, 1 + math.floor((now + horizon - start) / interval))
    record(now, 0, n)
    tat = start + n * interval
  end
end

redis.call('HSET', key, 'successes', total, 'streak', streak, 'sample_at', fmt(sample_at),
  'accepted', table.concat(accepted, ','), 'offered', table.concat(offered, ','),
  'tat', fmt(tat), 'origin', fmt(origin))
redis.call('HINCRBY', key, 'v', 1)
redis.call('PEXPIRE', key, tonumber(ARGV[11]))
local ratetext = ''
if rate ~= nil then ratetext = fmt(rate) end
return {fmt(now), fmt(first), fmt(interval), n, ratetext, cuts, fmt(pause_until)}
