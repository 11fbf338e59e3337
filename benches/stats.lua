-- wrk script that only reports: prints one machine-readable line for benches/load.sh after the
-- run, so that rates exclude error responses and the p99 comes in microseconds rather than
-- wrk's unit-suffixed text.
--
-- Usage: wrk ... -s benches/stats.lua URL
-- Prints: RESULT ok=N bad=N errors=N seconds=S p50_us=N p99_us=N
-- `bad` counts statuses above 399 (as wrk does), so `ok` includes any 3xx.

function done(summary, latency, _)
    local e = summary.errors
    io.write(string.format("RESULT ok=%d bad=%d errors=%d seconds=%.3f p50_us=%d p99_us=%d\n",
        summary.requests - e.status, e.status, e.connect + e.read + e.write + e.timeout,
        summary.duration / 1e6, latency:percentile(50), latency:percentile(99)))
end
