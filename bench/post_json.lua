-- wrk script of bench/run: every request is a POST of the JSON body in the
-- environment variable WRK_BODY, with the headers given by wrk -H (the
-- Authorization) plus Content-Type. "%n" in the body becomes a per-thread
-- counter, so consecutive bodies differ.
local body = os.getenv("WRK_BODY") or "{}"
local n = 0

request = function()
    n = n + 1
    wrk.headers["Content-Type"] = "application/json"
    return wrk.format("POST", nil, nil, (body:gsub("%%n", tostring(n))))
end
