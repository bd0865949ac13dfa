//! `Gcra`: the generic cell rate algorithm (as in redis-cell), `limit` units per `window_ms`
//! with a burst of `limit`. The common rules of `algorithm` apply (clamped clock, `need`, peeks,
//! denied calls record nothing); `lua/rate_limit_gcra.lua` is a copy.
//!
//! Each unit is worth `T = window_ms / limit` ms of "debt" that drains in real time; a call is
//! allowed iff the debt after it is at most `window_ms` (the burst of `limit` units). To stay
//! exact for any `limit`, debt is counted in units of `1 / limit` ms, so a unit is `window_ms`
//! of them and one ms drains `limit` of them. `debt` is relative to `last` (the clamped clock
//! of the last call); the theoretical arrival time of GCRA is `last + debt / limit`.
//!
//! With `L = limit`, `W = window_ms`, `d` = the debt after draining to `now`:
//! * allowed iff `need <= L` and `d + need * W <= L * W`; an allowed call adds `cost * W`.
//! * `remaining = L - ceil(d / W)` (0 if negative): the largest cost that fits now.
//! * `reset_after_ms = ceil(d / L)`: when the debt is gone (`expires_at = now + that`).
//! * denied (`need <= L`): `retry_after_ms = ceil((d + need * W - L * W) / L)`, exact: the
//!   same call is admitted after exactly that wait and not 1 ms earlier.
//! * A changed `limit` re-expresses the debt in the new unit, rounded up to whole ms and capped
//!   at a full burst (`L * W`); a changed `window_ms` keeps the debt (in ms) and changes the
//!   cost of a unit and the burst from that call on.
//! * Bound (fixed L, W): any half-open interval of length W contains at most
//!   `L + floor(L * (W - 1) / W)` admitted units (the burst, then the drain), tight.
//!
//! Memory: three integers, never a heap allocation.
//!
//! Redis scripts compute in doubles, exact below 2^53: the store accepts `gcra` only where
//! `L * W < 2^53` (`check_span`), which bounds every number the script forms and stores.

/// Largest `limit * window_ms` accepted for `gcra` (see the module docs).
pub const MAX_SPAN: u128 = (1 << 53) - 1;

/// `Err` with the message both backends give when `limit * window_ms` exceeds [`MAX_SPAN`].
pub fn check_span(limit: u64, window_ms: u64) -> Result<(), String> {
    if u128::from(limit) * u128::from(window_ms) > MAX_SPAN {
        return Err(format!(
            "gcra needs limit * window_ms < 2**53, got limit={limit} and window_ms={window_ms}"
        ));
    }
    Ok(())
}

/// State of [`Algorithm::Gcra`](super::Algorithm::Gcra).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gcra {
    /// Clamped clock of the last call, ms.
    last_ms: u64,
    /// Debt at `last_ms`, in units of `1 / per` ms.
    debt: u128,
    /// The limit `debt` is counted in (0 before the first call).
    per: u64,
}

impl Gcra {
    pub(super) fn hit(
        &mut self,
        now_ms: u64,
        limit: u64,
        window: u64,
        cost: u64,
    ) -> super::Decision {
        // State more than a window ahead: a wall clock stepped back further than a window since
        // it was written. Read as empty, as in the counters (held, it would deny until the clock
        // caught up).
        if self.last_ms > now_ms.saturating_add(window) {
            *self = Self::default();
        }
        let now = now_ms.max(self.last_ms);
        // `limit = 0` (out of contract) denies everything; debt is then counted per ms.
        let per = limit.max(1);
        let (l, w) = (u128::from(per), u128::from(window));
        let cap = u128::from(limit) * w;
        if self.per != per && self.debt > 0 {
            let ms = self.debt.div_ceil(u128::from(self.per));
            self.debt = if ms >= w { l * w } else { ms * l };
        }
        self.per = per;
        let drained = u128::from(now - self.last_ms) * l;
        self.debt = self.debt.saturating_sub(drained);
        self.last_ms = now;
        let need = cost.max(1);
        let allowed = need <= limit && self.debt <= cap - u128::from(need) * w;
        if allowed {
            self.debt += u128::from(cost) * w;
        }
        let retry_after_ms = if allowed {
            0
        } else if need > limit {
            window
        } else {
            to_ms((self.debt - (cap - u128::from(need) * w)).div_ceil(l))
        };
        let used = self.debt.div_ceil(w);
        super::Decision {
            allowed,
            remaining: to_ms(u128::from(limit).saturating_sub(used)),
            reset_after_ms: self.expires_at() - now,
            retry_after_ms,
        }
    }

    pub(super) fn expires_at(&self) -> u64 {
        let per = u128::from(self.per.max(1));
        self.last_ms.saturating_add(to_ms(self.debt.div_ceil(per)))
    }
}

/// A wait or count that fits in u64 for every input in contract; saturates otherwise.
fn to_ms(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}
