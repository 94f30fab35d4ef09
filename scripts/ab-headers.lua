-- wrk: the headers scripts/ab-pinned.sh sends on every request: the READER's token (TOKEN) and
-- ACCEPT_ENCODING, each when set.
local token = os.getenv("TOKEN")
local accept = os.getenv("ACCEPT_ENCODING")
if token and token ~= "" then wrk.headers["Authorization"] = "Token " .. token end
if accept and accept ~= "" then wrk.headers["Accept-Encoding"] = accept end
