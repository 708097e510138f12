-- Shared pacing, report (after pacing_common).  KEYS: the state hash.
-- ARGV = NB, S, beta, recover, doubling, max_pause, max_hint_pause, ttl_ms,
-- WINDOW_HINT, MIN_RATE, WINDOW_SLOTS, recover_round_trips, SEARCH_FLOOR, BOUND_SPAN,
-- SEARCH_CUTS, NAMED_ROUND_TRIPS, SEARCH_ABOVE, WALL_RESET, PROBES, FEW, then per
-- feedback (in order): successes, throttled ('1'/'0'),
-- throttled_at, retry_after, local_rate, cap ('' for none), spread ('1'/'0'; '2': and
-- climb),
-- latest_accepted ('' unknown), walled ('1'/'0'), sounding ('1'/'0'), earliest_accepted
-- ('' unknown).  Returns {now, the new
-- state as HGETALL}.  Mirrors _pacing/backend.py apply_report (pause.learn_window and
-- on_hint, allowance.window_reset, curve.first_cut, cut, bounded, search_again, climb, freeze,
-- pause.bucket_bound, samples.accepted_rate, accepted_since and first_estimate,
-- _sounded, sounding.probe_answered and note_wall, allowance.stretch_answers, slot_wait and
-- slot_waited) for each feedback; held to it by tests/test_pacing_redis.py (and
-- tests/test_pacing_redis_agreement_slot_wait.py for the slot waits).
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local beta, recover0, doubling = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local max_pause, max_hint_pause = tonumber(ARGV[6]), tonumber(ARGV[7])
local WINDOW_HINT, MIN_RATE = tonumber(ARGV[9]), tonumber(ARGV[10])
local WINDOW_SLOTS, round_trips = tonumber(ARGV[11]), tonumber(ARGV[12])
local SEARCH_FLOOR, BOUND_SPAN = tonumber(ARGV[13]), tonumber(ARGV[14])
local SEARCH_CUTS, NAMED_ROUND_TRIPS = tonumber(ARGV[15]), tonumber(ARGV[16])
local SEARCH_ABOVE, WALL_RESET = tonumber(ARGV[17]), tonumber(ARGV[18])
local PROBES, FEW = tonumber(ARGV[19]), tonumber(ARGV[20])
local cap = nil
local NEG = -math.huge
local f = redis.call('HMGET', key, 'limit', 'searching', 'origin', 'recover', 'cut_at',
  'cuts', 'successes', 'successes_at_cut', 'throttles', 'pause_until', 'pause_began',
  'streak', 'window_hint', 'tat', 'sample_at', 'accepted', 'offered', 'win_reset',
  'win_size', 'win_sent', 'win_granted', 'win_probed', 'win_opened', 'win_base', 'hint_max',
  'win_first', 'win_last', 'win_throttles', 'snd_low', 'snd_high', 'snd_left', 'snd_probes',
  'snd_out', 'win_stretch', 'win_ramp', 'win_span', 'win_behind', 'win_claim', 'trip', 'walls')
local s = {limit = tonumber(f[1]), searching = f[2] ~= '0', origin = tonumber(f[3]) or 0,
  recover = tonumber(f[4]) or 0, cut_at = tonumber(f[5]) or NEG, cuts = tonumber(f[6]) or 0,
  successes = tonumber(f[7]) or 0, successes_at_cut = tonumber(f[8]) or 0,
  throttles = tonumber(f[9]) or 0, pause_until = tonumber(f[10]) or 0,
  pause_began = tonumber(f[11]) or NEG, streak = tonumber(f[12]) or 0,
  window_hint = tonumber(f[13]) or 0, tat = tonumber(f[14]) or NEG,
  sample_at = tonumber(f[15]) or 0, win_reset = tonumber(f[18]) or NEG,
  win_size = tonumber(f[19]) or 0, win_sent = tonumber(f[20]) or 0,
  win_granted = tonumber(f[21]) or NEG, win_probed = tonumber(f[22]) or 0,
  win_opened = tonumber(f[23]) or NEG, win_base = tonumber(f[24]) or 0,
  hint_max = tonumber(f[25]) or 0, win_first = tonumber(f[26]) or math.huge,
  win_last = tonumber(f[27]) or NEG, win_throttles = tonumber(f[28]) or 0,
  snd_low = tonumber(f[29]) or NEG, snd_high = tonumber(f[30]) or NEG,
  snd_left = tonumber(f[31]) or 0, snd_probes = tonumber(f[32]) or 0,
  snd_out = tonumber(f[33]) or NEG, win_stretch = tonumber(f[34]) or 0,
  win_ramp = tonumber(f[35]) or 0, win_span = tonumber(f[36]) or 0,
  win_behind = tonumber(f[37]) or 0, win_claim = tonumber(f[38]) or NEG,
  trip = tonumber(f[39]) or 0, walls = tonumber(f[40]) or 0}
local accepted, offered = list(f[16]), list(f[17])

-- the buckets shifted so the newest holds `at` (copies; samples._advance)
local function advanced(at)
  local bucket = math.floor(at / S) * S
  local shift = math.floor((bucket - s.sample_at) / S + 0.5)
  local acc, off, at_ = {}, {}, s.sample_at
  for i = 1, NB do
    if shift <= 0 then acc[i], off[i] = accepted[i], offered[i]
    else acc[i], off[i] = accepted[i + shift] or 0, offered[i + shift] or 0 end
  end
  if shift > 0 then at_ = bucket end
  return acc, off, at_
end
local function record(at, acc, off)  -- samples.record
  accepted, offered, s.sample_at = advanced(at)
  accepted[NB] = accepted[NB] + acc
  offered[NB] = offered[NB] + off
end
local function accepted_rate(at, span, since_origin)  -- samples.accepted_rate
  local acc, off, sample_at = advanced(at)
  local buckets = math.max(1, math.min(NB, math.ceil(span / S - 1e-9)))
  local start = sample_at - (buckets - 1) * S
  if since_origin then
    if s.origin < at then
      local since = math.ceil(math.floor((sample_at - s.origin) / S * 1e9 + 0.5) / 1e9) + 1
      buckets = math.max(1, math.min(buckets, since))
    end
    start = math.max(sample_at - (buckets - 1) * S, math.min(s.origin, at))
  end
  local elapsed = math.max(at - start, S / 2)
  local a, o = 0, 0
  for i = NB - buckets + 1, NB do a, o = a + acc[i], o + off[i] end
  return a / elapsed, o / elapsed
end
local function accepted_since(at, start)  -- samples.accepted_since
  local acc, _, sample_at = advanced(at)
  local n, first = 0, nil
  for i = 1, NB do
    local began = sample_at - (NB - i) * S
    if began >= start - 1e-9 then
      n = n + acc[i]
      if first == nil then first = began end
    end
  end
  if first == nil then return 0, 0 end
  return n, at - first
end
local function recover_time()
  if s.recover == 0 then return recover0 end
  return s.recover
end
local function curve_rate(at)  -- curve.rate
  local r = nil
  if s.limit ~= nil then
    local dt = math.max(at - s.origin, 0)
    local rec = recover_time()
    if s.searching then  -- curve.search_period: at least one round trip per doubling
      r = s.limit * 2 ^ math.min(dt / math.max(s.recover, doubling), 30)
    else
      dt = math.min(dt, 60)
      if dt <= 2 * rec then
        r = s.limit * (1 + (1 - beta) / rec ^ 3 * (dt - rec) ^ 3)
      else
        r = s.limit * (2 - beta) * 2 ^ math.min((dt - 2 * rec) / doubling, 30)
      end
      r = math.max(r, quiet_probe(s.limit, s.trip, s.window_hint, s.win_size, s.walls,
        s.hint_max, s.cuts, dt, rec))
    end
  end
  return r
end
local function rate_at(at)  -- backend.current_rate (curve.rate, capped)
  local r = curve_rate(at)
  if cap ~= nil and (r == nil or cap < r) then r = cap end
  return r
end
local function at_limit(resume, delay)  -- curve._at_limit: from its limit, not beta below
  s.recover = math.max(recover0, NAMED_ROUND_TRIPS * delay)
  s.origin = resume - s.recover
end
local function lowered(bound, resume, delay)  -- curve.bounded, past the search
  if bound < s.limit then
    local origin = s.origin
    s.limit = math.max(bound, MIN_RATE)
    if origin >= resume then at_limit(resume, delay) end
  end
end
local function is_doubling(at)  -- curve.doubling
  return s.searching or at - s.origin > 2 * recover_time()
end

-- episode.search_admits: what the limiter admitted per second since the search
-- began, when a 429 for a request sent in it says its start is far above that
local function search_admits(at, sent_at)
  if not s.searching or s.limit == nil or s.window_hint ~= 0 or sent_at == nil
      or sent_at <= s.cut_at then
    return nil
  end
  local n, seconds = accepted_since(at, s.cut_at + s.recover)
  if n <= 0 or seconds < math.max(s.recover, doubling) then return nil end
  local admits = n / seconds
  if admits < SEARCH_ABOVE * s.limit then return admits end
  return nil
end

for g = 21, #ARGV, 11 do
local successes, throttled = tonumber(ARGV[g]), ARGV[g + 1] == '1'
local sent_at, ra, local_rate = tonumber(ARGV[g + 2]), tonumber(ARGV[g + 3]), tonumber(ARGV[g + 4])
cap = tonumber(ARGV[g + 5])
local spread = ARGV[g + 6] ~= '0'  -- the arrival spread's 429: counted, nothing else
local climb = ARGV[g + 6] == '2'  -- ... but a one-token bucket's climb (curve.climb)
local walled = ARGV[g + 8] == '1'  -- a shut limiter's 429 (episode.wall_cut)
-- backend._sounded: a probe's 429 that looked for a window's reset: counted as the
-- spread's are and as none of the window's refusals
local sounding = throttled and ARGV[g + 9] == '1'
if sounding then
  spread, climb = true, false
  s.win_throttles = s.win_throttles + 1
-- allowance.earlier_windows: in a window's mode, a 429 for a send admitted before the
-- window could judge it (its reset; opened unseen, the window before) is an earlier
-- window's, answered late: counted, nothing else (as the spread's), none of its refusals
elseif throttled and s.window_hint > 0 and s.limit ~= nil and cap == nil and sent_at ~= nil
    and math.max(math.min(s.win_opened, s.win_reset), s.win_opened - s.window_hint)
      > sent_at + 1e-6 then
  spread = true
  s.win_throttles = s.win_throttles + 1
end
-- allowance.slot_wait: in a window's mode, a W send's exact 429 claiming a slot inside
-- the window (under half its hint), a shape to free it in known, the claim before it
-- (win_claim) not proved false: a sliding window's slot; counted, the mode kept
-- (slot_waited below); not a slot named beyond the shape (twice its stretch plus
-- this 429's round trip: adv9)
local slotwait = false
local shape = s.win_stretch
if shape <= 0 then shape = s.win_ramp end
shape = math.min(shape, s.window_hint / 2)
if throttled and not spread and s.window_hint > 0 and s.limit ~= nil and cap == nil
    and sent_at ~= nil and ra ~= nil and ra > 0 and ra ~= math.floor(ra)
    and 2 * ra < s.window_hint and sent_at >= s.win_opened - 1e-6
    and now + ra < s.win_opened + s.window_hint
    and not (s.win_sent > s.win_size and s.win_size > 0 and sent_at >= s.win_granted - 1e-6)
    and (s.win_ramp > 0 or s.win_stretch > 0)
    and ra <= 2 * shape + math.max(now - sent_at, 0)
    and not (sent_at - 2 * math.max(now - sent_at, 0) >= s.win_claim
      and s.win_last < s.win_claim) then
  slotwait, spread = true, true
end

-- samples.first_estimate: what every process got through, at least one request
-- per doubling
local estimate = math.max(local_rate or 0, 1 / doubling)
local total, first = 0, nil
for i = 1, NB do
  if accepted[i] > 0 and first == nil then first = s.sample_at - (NB - i) * S end
  total = total + accepted[i]
end
if first ~= nil then estimate = math.max(estimate, total / math.max(now - first, S)) end

if successes > 0 then
  record(now, successes, 0)
  s.successes = s.successes + successes
  s.streak = 0
  local latest = tonumber(ARGV[g + 7])
  -- allowance.stale_answers: all admitted before the window's reset: an earlier one's
  if latest ~= nil and math.min(s.win_opened, s.win_reset) > latest + 1e-6 then
    s.win_base = s.win_base + successes
  end
  -- allowance.stretch_answers: the window's first and last admissions of a success
  local opened_at = math.min(s.win_opened, s.win_reset)
  if latest ~= nil and latest >= opened_at - 1e-6
      and not (s.win_sent > s.win_size and s.win_size > 0 and latest >= s.win_granted - 1e-6) then
    local first = tonumber(ARGV[g + 10])  -- the earliest among them, if in the window
    if first == nil or first < opened_at - 1e-6 or first > latest then first = latest end
    s.win_first = math.min(s.win_first, first)
    s.win_last = math.max(s.win_last, latest)
  end
  -- allowance.not_the_probes: all admitted before the probe went: W's, slow
  if latest ~= nil and s.win_sent > s.win_size and s.win_size > 0
      and latest < s.win_granted - 1e-6 then
    s.win_probed = s.win_probed + successes
  end
end
if throttled then s.throttles = s.throttles + 1 end
if throttled and spread and climb and s.limit ~= nil and not is_doubling(now) then
  s.origin = now - 2 * recover_time()  -- curve.climb: into the doubling
end
if throttled and not spread then
  local tat = s.tat
  local paused_before = math.max(s.pause_until, now)
  local refused_since = math.max(s.pause_until, s.cut_at)
  -- the rate that drew the 429: the one its request was admitted at
  local admitted = now
  if sent_at ~= nil then admitted = math.min(sent_at, now) end
  -- allowance.in_window_mode before this 429: a window's 429s drew at the limit
  local windowed = s.window_hint > 0 and s.limit ~= nil and cap == nil
  local drew_at = rate_at(admitted)
  if ra ~= nil and ra > 0 then
    local ra = math.min(ra, max_hint_pause)  -- as a pacer caps it
    local exact = ra ~= math.floor(ra)
    local pace = drew_at or estimate  -- pause.learn_window (the first estimate)
    if exact and (pace == nil or ra * pace < WINDOW_SLOTS) then s.window_hint = 0
    -- an exact hint shorter than its own round trip opens no window (it resets unseen)
    elseif exact and sent_at ~= nil and ra < now - sent_at then
    elseif (exact or ra >= WINDOW_HINT) and ra > s.window_hint then s.window_hint = ra end
  end
  -- allowance.bounds_reset: a rounded hint of the wall whose pause ends at a reset
  local bound = ra ~= nil and ra >= 1 and ra == math.floor(ra) and sent_at ~= nil
    and sent_at < s.pause_began and s.win_reset == s.pause_until and s.pause_until > now
  -- its probe's rounded hint bounds the next reset (apply_report: probe)
  local probe = windowed and ra ~= nil and ra >= 1 and ra < WINDOW_HINT and ra == math.floor(ra)
    and sent_at ~= nil and s.win_sent > s.win_size and s.win_size > 0
    and sent_at >= s.win_granted
  -- a window's 429 says when it resets: one that does not is no window's
  if windowed and not bound and not probe
      and not (ra ~= nil and ra > 0 and (ra ~= math.floor(ra) or ra >= WINDOW_HINT)) then
    s.window_hint = 0
  end
  if bound and now + math.min(ra, max_hint_pause) < s.pause_until then  -- allowance.tighten
    s.pause_until = now + math.min(ra, max_hint_pause)
    s.win_reset = s.pause_until
  end
  do  -- pause.on_hint: no hint (or 0) is as unsure as a rounded one: the short pause
    local ra = ra
    if ra == nil or ra <= 0 then ra = 1 end
    local exact = ra ~= math.floor(ra)
    if sent_at ~= nil and sent_at >= s.pause_began then s.streak = s.streak + 1 end
    local wait  -- pause.on_hint
    if exact or ra >= WINDOW_HINT then wait = math.min(ra, max_hint_pause)
    else wait = math.min(max_pause * 2 ^ math.max(s.streak - 1, 0), 1.0) end
    if now + wait > s.pause_until then
      s.pause_until, s.pause_began = now + wait, now
      -- allowance.window_reset: a pause on a hint that says when ends at a reset
      if exact or ra >= WINDOW_HINT then s.win_reset = s.pause_until end
    end
  end
  if probe and now + ra > s.pause_until then
    s.pause_until, s.pause_began, s.win_reset = now + ra, now, now + ra
  end
  local resume = math.max(s.pause_until, now)
  -- pause.bucket_bound: the longest exact hint bounds a bucket's rate
  local bound = nil
  if ra ~= nil and ra > 0 and s.window_hint == 0 and ra ~= math.floor(ra) then
    local longest = ra
    if s.hint_max > ra then longest = s.hint_max end
    bound = 1 / longest
    local pace = drew_at or estimate
    if pace ~= nil and pace >= WINDOW_SLOTS * bound then bound = nil end
  end
  if bound ~= nil and accepted_rate(now, BOUND_SPAN, false) > bound then bound = nil end
  local done = false
  if s.limit == nil then  -- curve.first_cut
    s.limit = math.max(estimate, MIN_RATE)
    s.searching, s.origin, s.cut_at = true, resume, resume
    s.recover = now - admitted  -- the round trip: the search's period (curve.search_period)
    s.cuts, s.successes_at_cut = s.cuts + 1, s.successes
    done = bound == nil
  end
  if done then  -- (the first cut alone)
  elseif bound ~= nil and s.searching then  -- curve.bounded: the search ends there
    if bound < curve_rate(now) then  -- (above the search's rate: no cut)
      local low = bound
      if admitted > s.cut_at and drew_at ~= nil and drew_at < low then low = drew_at end
      s.limit, s.searching = math.max(low, MIN_RATE), false
      s.cuts, s.successes_at_cut, s.trip = s.cuts + 1, s.successes, now - admitted
      at_limit(resume, now - admitted)
      s.cut_at = resume
    end
    s.cut_at = math.max(s.cut_at, tat)
  elseif search_admits(now, sent_at) ~= nil then  -- curve.search_again
    local limit = math.max(search_admits(now, sent_at), MIN_RATE)
    s.limit, s.recover = limit, math.max(s.recover, 1 / limit)
    s.origin, s.cut_at, s.successes_at_cut = resume, math.max(resume, tat), s.successes
  elseif sent_at ~= nil and sent_at > s.cut_at and s.successes > s.successes_at_cut
      and not (s.searching and now - s.origin < math.max(s.recover, doubling)
        and s.window_hint == 0) then
    local drew = drew_at or s.limit
    if windowed and s.window_hint > 0 then drew = math.max(drew, s.limit) end
    local span = math.min(math.max(0.25, ra or 0), 1.0)
    local steep = is_doubling(now)
    if steep then span = 0.15 end
    local acc, off = accepted_rate(now, span, true)
    local paced = rate_at(now - span / 2) or drew
    local measured = nil
    if off >= 0.5 * paced then measured = acc end  -- curve.trust_accepted
    local since = resume - s.cut_at
    if s.window_hint ~= 0 and since > 0 then
      local average = (s.successes - s.successes_at_cut) / since
      if 2 * since < s.window_hint then  -- allowance.window_average
        average = math.max(s.successes - s.successes_at_cut, s.win_size) / s.window_hint
      end
      measured = nil
      if drew > 2 * average then measured = average end
    end
    local limit = drew  -- curve.cut
    if measured ~= nil then limit = math.min(drew, measured) end
    local window = s.window_hint > 0
    if not window then limit = math.max(limit, 0.5 * drew) end
    if steep and not window then limit = math.max(limit, drew * SEARCH_FLOOR) end
    s.recover = math.max(recover0, 3.0 * s.window_hint, 1.5 * (ra or 0),
      round_trips * (now - admitted))
    s.limit, s.searching, s.origin = math.max(limit, MIN_RATE), false, resume
    s.cut_at, s.cuts, s.successes_at_cut = math.max(resume, tat), s.cuts + 1, s.successes
    s.trip = now - admitted  -- curve.cut: the quiet probe's round trip
    -- episode.wall_cut: a wall's rounded hint, the rate of the window it stands for
    if walled and not windowed and ra ~= nil and ra >= 1 then
      local acc, _, sample_at = advanced(now)
      local total, first = 0, nil
      for i = 1, NB do
        if acc[i] > 0 and first == nil then first = sample_at - (NB - i) * S end
        total = total + acc[i]
      end
      if first ~= nil then
        local carried = total / math.max(now + ra - WALL_RESET - first, S)
        if carried > s.limit then s.limit = carried end
      end
    end
    if bound ~= nil and s.cuts <= SEARCH_CUTS then lowered(bound, resume, now - admitted) end
  else  -- curve.freeze
    if bound ~= nil and s.cuts <= SEARCH_CUTS then lowered(bound, resume, now - admitted) end
    -- a bucket's exact hint, sent since the cut, no success since it: the time since
    -- the last pause froze too
    if bound ~= nil and sent_at ~= nil and sent_at > s.cut_at
        and s.successes <= s.successes_at_cut then
      paused_before = math.min(paused_before, refused_since)
    end
    local stalled = resume - math.max(paused_before, s.origin)
    if stalled > 0 then s.origin = s.origin + stalled end
  end
end
if slotwait then  -- allowance.slot_waited: a sliding window; its share given back
  local hint = s.window_hint
  local stretch = s.win_stretch
  if stretch <= 0 then stretch = s.win_ramp end
  stretch = math.min(stretch, hint / 2)
  local sent = math.max(s.win_sent - 1, 0)
  if s.win_size > 0 and stretch > 0 then  -- the spread behind: a slot after the named one
    local slot = stretch / s.win_size
    local due = s.win_opened + s.win_behind + slot * sent
    s.win_behind = s.win_behind + math.max(now + ra + slot - due, 0)
  end
  s.window_hint = math.max(hint, math.min(s.win_span, 2 * hint))
  s.win_stretch, s.win_sent, s.win_throttles = stretch, sent, s.win_throttles + 1
  s.win_claim = now + ra
end
if throttled and not spread and ra ~= nil and ra > 0 and ra ~= math.floor(ra) then
  s.hint_max = math.max(s.hint_max, math.min(ra, max_hint_pause))  -- apply_report
end
-- the wall's rounded bound, where a pause ends at a window's reset (bounds_the_pause)
local bounds = ra ~= nil and ra >= 1 and ra == math.floor(ra) and s.window_hint > 0
  and s.limit ~= nil and cap == nil and s.win_reset == s.pause_until and s.pause_until > now
if sounding and bounds and now + math.min(ra, max_hint_pause) < s.pause_until then
  s.pause_until = now + math.min(ra, max_hint_pause)  -- _sounded: allowance.tighten
  s.win_reset = s.pause_until
  bounds = s.pause_until > now
end
if sounding then  -- sounding.probe_answered
  s.snd_left = math.max(s.snd_left - 1, 0)
  if sent_at ~= nil and math.abs(sent_at - s.snd_out) < 1e-6 then s.snd_out = NEG end
end
if throttled and walled then s.walls = s.walls + 1 end  -- backend.apply_report: a wall seen
if throttled and bounds and sent_at ~= nil then  -- sounding.note_wall
  if ra > WINDOW_HINT then s.snd_left, s.snd_probes = 0, 0
  else
    local low, high = sent_at + ra - 1, now + ra
    if s.snd_high <= now or low >= s.snd_high or high <= s.snd_low then
      local window = s.win_size
      if window == 0 then window = s.successes end
      local probes = 0
      if window >= FEW then probes = PROBES end
      s.snd_low, s.snd_high, s.snd_left, s.snd_probes = low, high, probes, probes
      s.snd_out = NEG
    else
      s.snd_low, s.snd_high = math.max(s.snd_low, low), math.min(s.snd_high, high)
      local window = s.win_size
      if window == 0 then window = s.successes end
      if s.snd_probes == 0 and window >= FEW then  -- judged again (more reported since)
        s.snd_left, s.snd_probes = PROBES, PROBES
      end
    end
  end
end
end

local limit, searching = '', '0'
if s.limit ~= nil then limit = fmt(s.limit) end
if s.searching then searching = '1' end
redis.call('HSET', key, 'limit', limit, 'searching', searching, 'origin', fmt(s.origin),
  'recover', fmt(s.recover), 'cut_at', fmt(s.cut_at), 'cuts', s.cuts,
  'successes', s.successes, 'successes_at_cut', s.successes_at_cut,
  'throttles', s.throttles, 'pause_until', fmt(s.pause_until),
  'pause_began', fmt(s.pause_began), 'streak', s.streak,
  'window_hint', fmt(s.window_hint), 'sample_at', fmt(s.sample_at),
  'win_reset', fmt(s.win_reset), 'win_probed', s.win_probed, 'win_base', s.win_base,
  'win_throttles', s.win_throttles, 'win_sent', s.win_sent, 'win_stretch', fmt(s.win_stretch),
  'win_behind', fmt(s.win_behind), 'win_claim', fmt(s.win_claim),
  'hint_max', fmt(s.hint_max), 'win_first', fmt(s.win_first), 'win_last', fmt(s.win_last),
  'snd_low', fmt(s.snd_low), 'snd_high', fmt(s.snd_high), 'snd_left', s.snd_left,
  'snd_probes', s.snd_probes, 'snd_out', fmt(s.snd_out), 'trip', fmt(s.trip), 'walls', s.walls,
  'accepted', table.concat(accepted, ','), 'offered', table.concat(offered, ','))
redis.call('HINCRBY', key, 'v', 1)
redis.call('PEXPIRE', key, tonumber(ARGV[8]))
return {fmt(now), redis.call('HGETALL', key)}
