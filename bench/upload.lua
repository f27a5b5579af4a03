-- wrk script of bench/run's upload rows: every request is a POST of the file named by
-- WRK_BODY_FILE (a complete multipart body) with the Content-Type in WRK_CTYPE and the
-- headers given by wrk -H (the Authorization).
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()
local ctype = os.getenv("WRK_CTYPE")

request = function()
    wrk.headers["Content-Type"] = ctype
    return wrk.format("POST", nil, nil, body)
end
