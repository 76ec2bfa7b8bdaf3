-- wrk script for POST /api/v1/collect (and the ceiling's /collect).
-- Arguments after "--": events-per-request, seed, site key, visitor pool size.
-- Every event gets a fresh UUID-shaped event_id, so none is a duplicate; ts is
-- the current time, which the server accepts (7 days old to 5 minutes ahead).
-- X-Forwarded-For picks a visitor from a pool (the server trusts loopback
-- proxies), so sessions, geo lookups and visitor hashes vary like real traffic.

local events_per_request = 1
local site_key = "pk_bench"
local visitors = {}
local random = math.random
local format = string.format
local concat = table.concat

local host = "https://www.bench.example"
local paths = {
  "/", "/", "/", "/services", "/services/data-strategy", "/services/cloud-migration",
  "/services/ai-automation", "/pricing", "/pricing", "/case-studies", "/contact",
  "/contact", "/about", "/team", "/careers", "/blog", "/blog/modern-data-stack-checklist",
  "/blog/cloud-cost-traps", "/blog/ai-pilots-that-ship", "/industries/healthcare",
  "/industries/finance", "/industries/retail", "/webinars/q3-data-roadmap",
  "/lp/free-assessment?utm_source=google&utm_medium=cpc&utm_campaign=assessment",
  "/lp/free-assessment?gclid=Cj0KCQjw", "/?utm_source=newsletter&utm_medium=email",
}
local referrers = {
  "", "", "", "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/",
  "https://duckduckgo.com/", "https://www.linkedin.com/", "https://chatgpt.com/",
  "https://news.ycombinator.com/", "https://www.bench.example/",
}
local vitals = {
  {"TTFB", 420}, {"FCP", 1300}, {"LCP", 2100}, {"CLS", 0.05}, {"INP", 140},
}

local function uuid()
  return format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    random(0, 65535), random(0, 65535), random(0, 65535), random(0, 4095),
    random(32768, 49151), random(0, 65535), random(0, 65535), random(0, 65535))
end

function init(args)
  events_per_request = tonumber(args[1]) or 1
  math.randomseed(tonumber(args[2]) or os.time())
  site_key = args[3] or site_key
  local pool = tonumber(args[4]) or 2000
  for i = 1, pool do
    -- Addresses are only header text: nothing is ever sent to them.
    visitors[i] = format("%d.%d.%d.%d", ({81, 86, 92, 73, 98, 24, 151, 185})[random(1, 8)],
      random(0, 255), random(0, 255), random(1, 254))
  end
end

local function event(i, ts, url, page_id)
  if i == 1 then
    return format('{"event_id":"%s","ts":%d,"type":"pageview","url":"%s","referrer":"%s",'
      .. '"title":"Bench page"}', page_id, ts, url, referrers[random(1, #referrers)])
  end
  local kind = i % 4
  if kind == 0 then
    local v = vitals[random(1, #vitals)]
    return format('{"event_id":"%s","ts":%d,"type":"vital","url":"%s","name":"%s",'
      .. '"value":%g,"props":{"rating":"good","navigation_type":"navigate"}}',
      uuid(), ts, url, v[1], v[2] * (0.5 + random()))
  elseif kind == 1 then
    return format('{"event_id":"%s","ts":%d,"type":"engagement","url":"%s","name":"scroll",'
      .. '"value":%d,"props":{"milestone":true,"pageview_id":"%s"}}',
      uuid(), ts, url, 25 * random(1, 4), page_id)
  elseif kind == 2 then
    return format('{"event_id":"%s","ts":%d,"type":"form","url":"%s","name":"field_blur",'
      .. '"props":{"form":"contact","field":"email","field_type":"email","filled":true}}',
      uuid(), ts, url)
  end
  return format('{"event_id":"%s","ts":%d,"type":"engagement","url":"%s",'
    .. '"name":"engaged_time","value":%d,"props":{"pageview_id":"%s"}}',
    uuid(), ts, url, random(1000, 90000), page_id)
end

function request()
  local ts = os.time() * 1000
  local url = host .. paths[random(1, #paths)]
  local page_id = uuid()
  local events = {}
  for i = 1, events_per_request do
    events[i] = event(i, ts, url, page_id)
  end
  local body = format('{"site_key":"%s","events":[%s],"sent_at":%d,"screen_width":1440,'
    .. '"timezone":"Europe/London","language":"en-GB"}', site_key, concat(events, ","), ts)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "text/plain",
    ["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
      .. "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    ["X-Forwarded-For"] = visitors[random(1, #visitors)],
  }, body)
end

-- One JSON line for bench/ingest.py; errors.status counts answers >= 400.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(format('BENCH_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,'
    .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
