-- wrk script for chained refresh-token rotation: every request presents a refresh token that has
-- never been sent before, taken from the previous 200's `refresh_token`, so each session is a
-- chain with at most one request in flight and no token is ever presented twice (a reused token
-- ends its session).
--
-- Usage: wrk -tT -cC -s benches/refresh.lua http://127.0.0.1:PORT/v1/auth/refresh -- TOKENS T
--   TOKENS: a file with one refresh token per line, at least C + T of them (one spare per thread:
--           wrk calls request() once on the first thread before connecting, and the token that
--           call takes is never sent). Thread i takes lines i, i+T, i+2T, ...
-- Prints one line for benches/load.sh:
--   RESULT ok=N bad=N statuses=CODE:N,... starved=N errors=N seconds=S p50_us=N p99_us=N
-- Only 200s that carry a refresh_token count as rotations (`ok`); anything else is `bad`, broken
-- down in `statuses`, and ends its chain. `starved` counts requests a thread had to send with no
-- live token left (all of its chains ended); the server refuses those by design.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("id", #threads)
end

function init(args)
    local path, nthreads = args[1], tonumber(args[2])
    assert(path and nthreads, "usage: ... -s refresh.lua URL -- TOKENS THREADS")
    -- Tokens wait in a FIFO rather than being tied to a connection: wrk's Lua cannot tell
    -- connections apart, and a FIFO keeps every chain moving at the same pace.
    pool, head, tail = {}, 1, 0
    local line_no = 0
    for line in io.lines(path) do
        if line ~= "" then
            line_no = line_no + 1
            if (line_no - 1) % nthreads == id - 1 then
                tail = tail + 1
                pool[tail] = line
            end
        end
    end
    assert(tail > 0, "no refresh tokens for thread " .. id .. " in " .. path)
    ok, bad, starved, statuses = 0, 0, 0, {}
    headers = { ["Content-Type"] = "application/json" }
end

function request()
    local token
    if head <= tail then
        token = pool[head]
        pool[head] = nil
        head = head + 1
    else
        starved = starved + 1
        token = "starved"
    end
    return wrk.format("POST", nil, headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, _, body)
    local token = status == 200 and body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then
        ok = ok + 1
        tail = tail + 1
        pool[tail] = token
    else
        -- The presented token may or may not have been spent; sending it again could end the
        -- session as a reuse, so this chain stops here.
        local key = status == 200 and "200-without-token" or tostring(status)
        bad = bad + 1
        statuses[key] = (statuses[key] or 0) + 1
    end
end

function done(summary, latency, _)
    local total_ok, total_bad, total_starved, by_status = 0, 0, 0, {}
    for _, thread in ipairs(threads) do
        total_ok = total_ok + thread:get("ok")
        total_bad = total_bad + thread:get("bad")
        total_starved = total_starved + thread:get("starved")
        for code, n in pairs(thread:get("statuses")) do
            by_status[code] = (by_status[code] or 0) + n
        end
    end
    local codes = {}
    for code, n in pairs(by_status) do
        table.insert(codes, code .. ":" .. n)
    end
    table.sort(codes)
    local e = summary.errors
    io.write(string.format(
        "RESULT ok=%d bad=%d statuses=%s starved=%d errors=%d seconds=%.3f p50_us=%d p99_us=%d\n",
        total_ok, total_bad, #codes > 0 and table.concat(codes, ",") or "-", total_starved,
        e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
        latency:percentile(50), latency:percentile(99)))
end
