"""Admission counters in Redis (when CACHE_URL is redis://): every step is one Lua script.

A script runs atomically on the Redis server, so check-and-add is one step however many
processes and machines call it. Per tenant: a hash of counters, a sorted set of holds by
expiry, a hash of each hold's reservation. Each reserve releases the tenant's expired
holds first (a sorted-set range read), so a crashed process's hold never outlives its
expiry by more than the next call. Keys expire 40 days after their last write; a lost key
is rebuilt by reconciliation.
"""

from django.core.cache import caches

from ..policy import Limits, Windows
from .base import Backend, Counters, Reservation, Usage

PREFIX = "switchyard:llm-limits:"
KEY_TTL = 40 * 86400

# KEYS: counters, holds (zset id→expiry), hold data (hash id→"minute day month tokens cost"),
# id sequence. Shared Lua prelude: read the counters, release expired holds, roll windows.
_PRELUDE = """
local now, m, d, mo = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local c = redis.call('HMGET', KEYS[1], 'minute', 'mr', 'mt', 'day', 'dc', 'month', 'mc', 'inflight')
local minute, mr, mt = tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0
local day, dc = tonumber(c[4]) or 0, tonumber(c[5]) or 0
local month, mc, inflight = tonumber(c[6]) or 0, tonumber(c[7]) or 0, tonumber(c[8]) or 0
local function parse(v)
  local f = {}
  for x in string.gmatch(v, '%S+') do f[#f + 1] = tonumber(x) end
  return f[1], f[2], f[3], f[4], f[5]
end
local function release(id)
  local v = redis.call('HGET', KEYS[3], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
  if not v then return false end
  local hm, hd, hmo, ht, hc = parse(v)
  if hm == minute then mt = math.max(0, mt - ht) end
  if hd == day then dc = math.max(0, dc - hc) end
  if hmo == month then mc = math.max(0, mc - hc) end
  inflight = math.max(0, inflight - 1)
  return true, hm, hd, hmo, ht, hc
end
local swept = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])) do
  if release(id) then swept = swept + 1 end
end
if minute ~= m then minute = m; mr = 0; mt = 0 end
if day ~= d then day = d; dc = 0 end
if month ~= mo then month = mo; mc = 0 end
local function store()
  redis.call('HSET', KEYS[1], 'minute', minute, 'mr', mr, 'mt', mt, 'day', day, 'dc', dc,
             'month', month, 'mc', mc, 'inflight', inflight)
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], %(ttl)d) end
end
""".replace("%(ttl)d", str(KEY_TTL))

# ARGV[5..]: tokens, cost, expires_at, rpm, tpm, usd/day, usd/month, concurrency ("" = none)
RESERVE = (
    _PRELUDE
    + """
local tokens, cost, expires = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local rpm, tpm, dcap, mcap, conc = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]),
  tonumber(ARGV[11]), tonumber(ARGV[12])
local ok = (not rpm or mr + 1 <= rpm) and (not tpm or mt + tokens <= tpm)
  and (not dcap or dc + cost <= dcap) and (not mcap or mc + cost <= mcap)
  and (not conc or inflight + 1 <= conc)
local id = 0
if ok then
  mr = mr + 1; mt = mt + tokens; dc = dc + cost; mc = mc + cost; inflight = inflight + 1
  id = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[2], expires, id)
  redis.call('HSET', KEYS[3], id, m .. ' ' .. d .. ' ' .. mo .. ' ' .. tokens .. ' ' .. cost)
  redis.call('EXPIRE', KEYS[4], %(ttl)d)
end
store()
return {id, mr, mt, dc, mc, inflight}
""".replace("%(ttl)d", str(KEY_TTL))
)

# ARGV[5..]: hold id, actual tokens, actual cost
SETTLE = (
    _PRELUDE
    + """
local tokens, cost = tonumber(ARGV[6]), tonumber(ARGV[7])
local held, hm, hd, hmo, ht, hc = release(ARGV[5])
mt = mt + tokens; dc = dc + cost; mc = mc + cost
store()
return held and 1 or 0
"""
)

READ = (
    _PRELUDE
    + """
return {mr, mt, dc, mc, inflight, swept}
"""
)

# ARGV[5..]: the usage rows' minute requests, minute tokens, day cost, month cost
RECONCILE = (
    _PRELUDE
    + """
local before = {mr, mt, dc, mc, inflight}
mr, mt, dc, mc, inflight = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]),
  tonumber(ARGV[8]), 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local v = redis.call('HGET', KEYS[3], id)
  if v then
    local hm, hd, hmo, ht, hc = parse(v)
    if hm == m then mr = mr + 1; mt = mt + ht end
    if hd == d then dc = dc + hc end
    if hmo == mo then mc = mc + hc end
    inflight = inflight + 1
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
store()
return {before[1], before[2], before[3], before[4], before[5], mr, mt, dc, mc, inflight}
"""
)


def _arg(value) -> str:
    return "" if value is None else str(int(value))


class RedisBackend(Backend):
    name = "redis"

    def __init__(self, client=None):
        self._client = client
        self._scripts = {}

    @property
    def client(self):
        if self._client is None:
            # The cache's own connection pool (django.core.cache.backends.redis).
            self._client = caches["default"]._cache.get_client(write=True)
        return self._client

    def _script(self, name: str, source: str):
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(source)
        return script

    @staticmethod
    def _keys(tenant_id: str) -> list[str]:
        base = f"{PREFIX}{tenant_id}:"
        return [base + "counters", base + "holds", base + "held", PREFIX + "seq"]

    @staticmethod
    def _window_args(w: Windows) -> list:
        return [repr(w.now), w.minute, w.day, w.month]

    def reserve(self, reservation: Reservation, limits: Limits, w: Windows):
        result = self._script("reserve", RESERVE)(
            keys=self._keys(reservation.tenant_id),
            args=[
                *self._window_args(w),
                reservation.tokens,
                reservation.cost,
                repr(reservation.expires_at),
                _arg(limits.requests_per_minute),
                _arg(limits.tokens_per_minute),
                _arg(limits.usd_per_day),
                _arg(limits.usd_per_month),
                _arg(limits.max_concurrent),
            ],
        )
        hold_id = int(result[0]) or None
        return hold_id, Counters(*(int(v) for v in result[1:6]))

    def settle(self, tenant_id: str, hold_id, tokens: int, cost: int, w: Windows) -> None:
        self._script("settle", SETTLE)(
            keys=self._keys(tenant_id), args=[*self._window_args(w), hold_id, tokens, cost]
        )

    def counters(self, tenant_id: str, w: Windows) -> Counters:
        result = self._script("read", READ)(keys=self._keys(tenant_id), args=self._window_args(w))
        return Counters(*(int(v) for v in result[:5]))

    def sweep(self, w: Windows, tenant_id: str | None = None) -> int:
        if tenant_id is None:
            # Every reserve sweeps its tenant; a full sweep walks the tenants with holds.
            total = 0
            for key in self.client.scan_iter(match=f"{PREFIX}*:holds", count=500):
                name = key.decode() if isinstance(key, bytes) else key
                total += self.sweep(w, name[len(PREFIX) : -len(":holds")])
            return total
        result = self._script("read", READ)(keys=self._keys(tenant_id), args=self._window_args(w))
        return int(result[5])

    def reconcile(self, tenant_id: str, usage: Usage, w: Windows):
        result = self._script("reconcile", RECONCILE)(
            keys=self._keys(tenant_id),
            args=[
                *self._window_args(w),
                usage.minute_requests,
                usage.minute_tokens,
                usage.day_cost,
                usage.month_cost,
            ],
        )
        values = [int(v) for v in result]
        return Counters(*values[:5]), Counters(*values[5:10])
