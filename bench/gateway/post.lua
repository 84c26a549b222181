-- wrk script: POST one OpenAI chat completion body with the key from the environment.
-- Usage: WRK_KEY=... wrk -s post.lua ...
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say ok."}],"max_tokens":8}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
