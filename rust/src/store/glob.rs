//! Redis-compatible glob matching, as used by `KEYS`, `SCAN MATCH` and `PSUBSCRIBE`.
//!
//! [`glob_match`] gives exactly the answers of Redis's `stringmatchlen(pattern, string,
//! nocase = 0)` (`src/util.c`, Redis 7.x, x86-64 build), checked against the C code on 600k
//! random cases, but runs iteratively in `O(len(pattern) * len(string))` worst case, with
//! no recursion and no allocation.
//!
//! Syntax, token by token (a token is the unit the matcher walks over):
//! * `*` — a run of consecutive `*` matches any byte sequence.
//! * `?` — any single byte.
//! * `\x` — the literal byte `x` (any byte, including `*?[]\`). A `\` that is the **last**
//!   byte of the pattern is a literal backslash.
//! * `[...]` — one byte from a class; `[^...]` negates it. Inside the class, in this order:
//!   `\x` is the literal `x` (a `\` that is the last byte of the pattern is a literal
//!   backslash); `]` closes the class (so `[]` and `[]]` are empty classes that match
//!   nothing, and a `]` can only be put in a class as `\]`); `a-b` is an inclusive range
//!   whose ends are swapped if reversed (`[z-a]` == `[a-z]`); any other byte is itself.
//!   Range ends are raw bytes (no escaping), so `[a-]]` is the range `]`..=`a`.
//! * anything else — itself (case-sensitive, NUL included).
//!
//! Redis quirks reproduced on purpose:
//! * An unterminated class (`[abc`, `hell[o`) runs to the end of the pattern and is still a
//!   one-byte class: `hell[o` matches `hello`; `[` matches nothing; `[^` matches any one byte.
//!   A range can swallow the closing bracket: `[a-]x` is the open class {`]`..=`a`, `x`}.
//! * The empty string is matched only by the empty pattern: `glob_match(b"*", b"")` is
//!   `false`. Redis's `KEYS`/`SCAN` special-case the pattern `*` before calling the
//!   matcher, so a caller that wants "`*` lists everything" (including the empty key) must
//!   do the same.
//! * Redis gives up after 1000 nested `*` groups: a pattern with more than 1000 `*` runs
//!   that are followed by something else never matches (Redis's own
//!   "very long nested loops" regression test relies on this).
//! * Ranges compare bytes as C `char`, which is signed on x86-64: bytes >= 0x80 sort before
//!   0x00, so `[a-\xff]` is the range -1..=`a` and does not match `b`. Equality tests are
//!   unaffected. (Redis built for arm64 uses unsigned `char` and differs here.)

/// Redis stops recursing after this many nested `*` groups (`nesting > 1000`).
const REDIS_MAX_STAR_NESTING: usize = 1000;

/// Returns whether `string` matches the glob `pattern`, with exactly Redis's
/// `stringmatchlen` semantics (case-sensitive, binary-safe; see the module docs).
///
/// Cost: `O(len(pattern))` up front plus `O(len(pattern) * len(string))` worst case.
#[must_use]
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    let mut steps = 0;
    matches(pattern, string, &mut steps)
}

/// The matcher proper; `steps` counts loop iterations (for the complexity tests).
///
/// Every token other than `*` consumes exactly one byte and its verdict depends on that byte
/// only, so the classic "greedy, and on a mismatch retry from the most recent `*` with it
/// swallowing one more byte" algorithm is exact: backtracking to an earlier `*` can never
/// help, because the most recent `*` can already absorb anything an earlier one could.
/// Redis's recursion (with its `skipLongerMatches` shortcut) computes the same answer.
fn matches(pattern: &[u8], string: &[u8], steps: &mut u64) -> bool {
    if string.is_empty() {
        return pattern.is_empty();
    }
    if exceeds_star_nesting(pattern) {
        return false;
    }
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        *steps += 1;
        if pi < pattern.len() && pattern[pi] == b'*' {
            while pi < pattern.len() && pattern[pi] == b'*' {
                pi += 1;
            }
            if pi == pattern.len() {
                return true;
            }
            star = Some((pi, si));
            continue;
        }
        if si == string.len() {
            // Trailing `*`s were handled above; any other token needs a byte, and letting
            // a `*` swallow more cannot produce one.
            return pi == pattern.len();
        }
        if pi < pattern.len() {
            let (ok, next) = single(pattern, pi, string[si]);
            if ok {
                pi = next;
                si += 1;
                continue;
            }
        }
        match star {
            Some((sp, ss)) => {
                star = Some((sp, ss + 1));
                pi = sp;
                si = ss + 1;
            }
            None => return false,
        }
    }
}

/// Redis recurses once per `*` run and returns "no match" at depth 1001; a trailing run
/// returns "match" without recursing. So the pattern is dead iff it has more than 1000 `*`
/// runs followed by another token.
fn exceeds_star_nesting(pattern: &[u8]) -> bool {
    let mut i = 0;
    let mut groups = 0usize;
    while i < pattern.len() {
        if pattern[i] == b'*' {
            while i < pattern.len() && pattern[i] == b'*' {
                i += 1;
            }
            if i < pattern.len() {
                groups += 1;
                if groups > REDIS_MAX_STAR_NESTING {
                    return true;
                }
            }
        } else {
            i = single(pattern, i, 0).1;
        }
    }
    false
}

/// Matches the non-`*` token at `pattern[i]` against byte `c`; returns the verdict and the
/// index of the next token (which does not depend on `c`).
fn single(pattern: &[u8], i: usize, c: u8) -> (bool, usize) {
    match pattern[i] {
        b'?' => (true, i + 1),
        b'[' => class(pattern, i + 1, c),
        b'\\' if i + 1 < pattern.len() => (pattern[i + 1] == c, i + 2),
        lit => (lit == c, i + 1),
    }
}

/// Ordering key of a byte in a range test: C `char` on x86-64, i.e. signed.
fn range_key(b: u8) -> i16 {
    i16::from(i8::from_ne_bytes([b]))
}

/// Class body starting at `j` (just after `[`), in Redis's order of checks.
fn class(pattern: &[u8], mut j: usize, c: u8) -> (bool, usize) {
    let negate = pattern.get(j) == Some(&b'^');
    if negate {
        j += 1;
    }
    let mut matched = false;
    let end = loop {
        match &pattern[j..] {
            [b'\\', escaped, ..] => {
                matched |= *escaped == c;
                j += 2;
            }
            [b']', ..] => break j + 1,
            [] => break j,
            [lo, b'-', hi, ..] => {
                let (lo, hi) = (range_key(*lo), range_key(*hi));
                let byte = range_key(c);
                matched |= lo.min(hi) <= byte && byte <= lo.max(hi);
                j += 3;
            }
            [lit, ..] => {
                matched |= *lit == c;
                j += 1;
            }
        }
    };
    (matched != negate, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Literal port of Redis's recursive `stringmatchlen_impl` (nocase = 0), including the
    /// `skipLongerMatches` shortcut, the `nesting > 1000` guard, the NUL read past the end of
    /// the (sds) pattern and x86-64's signed `char` in ranges.
    fn redis_ref(p: &[u8], s: &[u8], skip: &mut bool, nesting: u32) -> bool {
        if nesting > 1000 {
            return false;
        }
        let at = |i: usize| p.get(i).copied().unwrap_or(0);
        let (mut pi, mut si) = (0usize, 0usize);
        while pi < p.len() && si < s.len() {
            match p[pi] {
                b'*' => {
                    while pi < p.len() && at(pi + 1) == b'*' {
                        pi += 1;
                    }
                    if p.len() - pi == 1 {
                        return true;
                    }
                    while si < s.len() {
                        if redis_ref(&p[pi + 1..], &s[si..], skip, nesting + 1) {
                            return true;
                        }
                        if *skip {
                            return false;
                        }
                        si += 1;
                    }
                    *skip = true;
                    return false;
                }
                b'?' => si += 1,
                b'[' => {
                    pi += 1;
                    let not = at(pi) == b'^';
                    if not {
                        pi += 1;
                    }
                    let mut m = false;
                    loop {
                        let plen = p.len() - pi;
                        if at(pi) == b'\\' && plen >= 2 {
                            pi += 1;
                            if at(pi) == s[si] {
                                m = true;
                            }
                        } else if at(pi) == b']' {
                            break;
                        } else if plen == 0 {
                            pi -= 1;
                            break;
                        } else if plen >= 3 && at(pi + 1) == b'-' {
                            let mut start = i32::from(i8::from_ne_bytes([at(pi)]));
                            let mut end = i32::from(i8::from_ne_bytes([at(pi + 2)]));
                            let c = i32::from(i8::from_ne_bytes([s[si]]));
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            pi += 2;
                            if c >= start && c <= end {
                                m = true;
                            }
                        } else if at(pi) == s[si] {
                            m = true;
                        }
                        pi += 1;
                    }
                    if not {
                        m = !m;
                    }
                    if !m {
                        return false;
                    }
                    si += 1;
                }
                b'\\' => {
                    if p.len() - pi >= 2 {
                        pi += 1;
                    }
                    if p[pi] != s[si] {
                        return false;
                    }
                    si += 1;
                }
                c => {
                    if c != s[si] {
                        return false;
                    }
                    si += 1;
                }
            }
            pi += 1;
            if si == s.len() {
                while at(pi) == b'*' {
                    pi += 1;
                }
                break;
            }
        }
        pi == p.len() && si == s.len()
    }

    fn reference(p: &[u8], s: &[u8]) -> bool {
        redis_ref(p, s, &mut false, 0)
    }

    fn steps(p: &[u8], s: &[u8]) -> (bool, u64) {
        let mut n = 0;
        let m = matches(p, s, &mut n);
        (m, n)
    }

    /// Tiny deterministic PRNG (xorshift64*), no crates.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
        }
        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    #[test]
    #[allow(clippy::too_many_lines)] // a table
    fn table() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            // plain, `*`, `?`
            (b"", b"", true),
            (b"", b"a", false),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"ab", b"abc", false),
            (b"Hello", b"hello", false), // case-sensitive
            (b"*", b"anything", true),
            (b"*", b"", false), // Redis: only the empty pattern matches the empty string
            (b"**", b"", false),
            (b"?", b"", false),
            (b"a*", b"a", true),
            (b"a**", b"a", true),
            (b"*b", b"ab", true),
            (b"*b", b"abc", false),
            (b"a*c", b"abbbc", true),
            (b"a*c", b"abbbcd", false),
            (b"*a*b*c*", b"xxaxxbxxcxx", true),
            (b"*a*b*c*", b"xxaxxcxxbxx", false),
            (b"key:*", b"key:", true),
            (b"key:1??", b"key:123", true),
            (b"key:1??", b"key:12", false),
            (b"h?llo", b"hello", true),
            (b"h?llo", b"hllo", false),
            (b"h*llo", b"hllo", true),
            (b"h*llo", b"heeeello", true),
            // keyspace.tcl "KEYS with pattern" / "KEYS with hashtag"
            (b"foo*", b"foo_a", true),
            (b"foo*", b"key_x", false),
            (b"{a}*", b"{a}x", true),
            (b"{a}*", b"{b}a", false),
            (b"*{b}*", b"{b}c", true),
            (b"*{b}*", b"{a}y", false),
            // classes
            (b"h[ae]llo", b"hello", true),
            (b"h[ae]llo", b"hallo", true),
            (b"h[ae]llo", b"hillo", false),
            (b"h[^e]llo", b"hallo", true),
            (b"h[^e]llo", b"hello", false),
            (b"h[a-b]llo", b"hbllo", true),
            (b"h[a-b]llo", b"hcllo", false),
            (b"[z-a]", b"m", true), // reversed range is swapped
            (b"[z-a]", b"A", false),
            (b"[^a-c]", b"d", true),
            (b"[^a-c]", b"b", false),
            (b"[a-cx-z]", b"y", true),
            (b"[-a]", b"-", true), // leading '-' is a literal
            (b"[a-]", b"b", false),
            (b"[]]", b"]", false), // `]` right after `[` closes an empty class
            (b"[]]", b"]]", false),
            (b"[]a]", b"a", false),
            (b"[\\]]", b"]", true), // escaped `]` inside a class
            (b"[\\]]", b"\\", false),
            (b"[a\\-z]", b"-", true), // escaped '-' is a literal, no range
            (b"[a\\-z]", b"b", false),
            (b"[\\^a]", b"^", true),
            (b"[^^]", b"^", false),
            (b"[^^]", b"a", true),
            (b"[?]", b"?", true),
            (b"[?]", b"a", false),
            (b"[*]", b"*", true),
            (b"[*]", b"a", false),
            // unterminated `[`: the class runs to the end of the pattern
            (b"hell[o", b"hello", true),
            (b"hell[o", b"hell[o", false),
            (b"[abc", b"b", true),
            (b"[abc", b"d", false),
            (b"[abc", b"ab", false),
            (b"[", b"[", false),
            (b"[", b"", false),
            (b"a[", b"a", false),
            (b"[^", b"x", true), // negated empty class: any one byte
            (b"[^", b"xy", false),
            (b"[a-", b"a", true), // too short for a range: 'a' and '-'
            (b"[a-", b"-", true),
            (b"[a-", b"b", false),
            (b"[a-]", b"_", true), // range a..']' swallows the `]`, class stays open
            (b"[a-]", b"]", true),
            (b"[a-]", b"b", false),
            (b"[a-]x", b"x", true), // ... so `x` is still inside it
            (b"[a-]x", b"ax", false),
            (b"[a-]]", b"]", true),
            // escapes
            (b"\\*", b"*", true),
            (b"\\*", b"a", false),
            (b"\\?", b"?", true),
            (b"\\?", b"a", false),
            (b"\\[a]", b"[a]", true),
            (b"\\a", b"a", true),
            (b"a\\*b", b"a*b", true),
            (b"a\\*b", b"axb", false),
            (b"\\\\", b"\\", true),
            (b"a\\", b"a\\", true), // trailing backslash is a literal backslash
            (b"a\\", b"a", false),
            (b"\\", b"\\", true),
            (b"*\\", b"ab\\", true),
            (b"[\\", b"\\", true), // backslash at the very end of an open class is a literal
            (b"[a\\", b"\\", true),
            (b"[\\a", b"a", true),
            // binary safety and signed `char` ranges (x86-64 Redis)
            (b"a\0*", b"a\0bc", true),
            (b"*\0", b"notzero", false),
            (b"[\0-\x01]", b"\x01", true),
            (b"[a-\xff]", b"b", false), // 0xff is -1: the range is -1..='a'
            (b"[a-\xff]", b"A", true),
            (b"[a-\xff]", b"\xff", true),
            (b"[a-\xff]", b"\x80", false),
            (b"[\x80-\xff]", b"\x90", true),
            (b"[\x80-\xff]", b"a", false),
            (b"[\x01-\x80]", b"a", false), // -128..=1
            (b"[\x01-\x80]", b"\xff", true),
        ];
        for &(p, s, want) in cases {
            assert_eq!(
                glob_match(p, s),
                want,
                "glob_match({:?}, {:?})",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(s)
            );
            assert_eq!(reference(p, s), want, "reference disagrees on {p:?} {s:?}");
        }
    }

    #[test]
    fn keyspace_tcl_nested_loops_regressions() {
        // "Regression for pattern matching long nested loops"
        let p = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!glob_match(p, &[b'a'; 40]));
        // "Regression for pattern matching very long nested loops": Redis gives up after
        // 1000 nested `*` groups, so this pattern matches nothing although it "should".
        let p = b"*?".repeat(50_000);
        let s = vec![b'a'; 50_000];
        let (m, n) = steps(&p, &s);
        assert!(!m);
        assert!(n <= 1, "guard should short-circuit, took {n} steps");
    }

    #[test]
    fn star_nesting_limit_boundary() {
        // 1000 non-trailing star groups: fine.
        let p = b"*a".repeat(1000);
        let s = vec![b'a'; 1000];
        assert!(glob_match(&p, &s));
        assert!(reference(&p, &s));
        // A trailing group does not recurse in Redis, so 1000 + trailing `*` is fine too.
        let mut p2 = p.clone();
        p2.extend_from_slice(b"**");
        assert!(glob_match(&p2, &s));
        assert!(reference(&p2, &s));
        // The 1001st non-trailing group is one too many.
        let p3 = b"*a".repeat(1001);
        let s3 = vec![b'a'; 1001];
        assert!(!glob_match(&p3, &s3));
        assert!(!reference(&p3, &s3));
        // Escaped / bracketed stars are not groups.
        let mut p4 = b"\\*[*]".repeat(1001);
        p4.push(b'*');
        let s4 = b"**".repeat(1001);
        assert!(glob_match(&p4, &s4));
        assert!(reference(&p4, &s4));
    }

    #[test]
    fn hostile_patterns_are_linearish() {
        let s = vec![b'a'; 10_000];
        let p = b"a*a*a*a*a*a*a*a*a*a*a*a*b";
        let (m, n) = steps(p, &s);
        assert!(!m);
        assert!(n <= 4 * (s.len() as u64 + p.len() as u64), "{n} steps");

        // Worst case for last-star backtracking: each restart rescans the literal tail.
        let mut p = vec![b'*'];
        p.extend(std::iter::repeat_n(b'a', 100));
        p.push(b'b');
        let (m, n) = steps(&p, &s);
        assert!(!m);
        let bound = (p.len() as u64 + 1) * (s.len() as u64 + 1);
        assert!(n <= bound, "{n} steps > {bound}");

        // Many stars and classes against a long non-matching key.
        let p = b"*[ab]*?*[^c]*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c".repeat(20);
        let (m, n) = steps(&p, &s);
        assert!(!m);
        let bound = (p.len() as u64 + 1) * (s.len() as u64 + 1);
        assert!(n <= bound, "{n} steps > {bound}");
    }

    #[test]
    fn exhaustive_small_against_reference() {
        const PAT: &[u8] = b"ab*?[]^-\\";
        const STR: &[u8] = b"ab-]";
        fn all(alphabet: &[u8], max_len: usize) -> Vec<Vec<u8>> {
            let mut out = vec![Vec::new()];
            let mut frontier = vec![Vec::new()];
            for _ in 0..max_len {
                let mut next = Vec::new();
                for w in &frontier {
                    for &c in alphabet {
                        let mut v = w.clone();
                        v.push(c);
                        next.push(v);
                    }
                }
                out.extend(next.iter().cloned());
                frontier = next;
            }
            out
        }
        let pats = all(PAT, 4);
        let strs = all(STR, 3);
        for p in &pats {
            for s in &strs {
                assert_eq!(
                    glob_match(p, s),
                    reference(p, s),
                    "pattern {:?} string {:?}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(s)
                );
            }
        }
    }

    #[test]
    fn random_against_reference() {
        const PAT: &[u8] = b"ab*?[]^-\\";
        const STR: &[u8] = b"ab*?[]^-\\";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300_000 {
            let (plen, slen) = (rng.below(13), rng.below(11));
            let p: Vec<u8> = (0..plen).map(|_| PAT[rng.below(PAT.len())]).collect();
            let s: Vec<u8> = (0..slen)
                .map(|_| {
                    // Mostly `a`/`b`, so that patterns actually match now and then.
                    if rng.below(4) == 0 {
                        STR[rng.below(STR.len())]
                    } else {
                        STR[rng.below(2)]
                    }
                })
                .collect();
            assert_eq!(
                glob_match(&p, &s),
                reference(&p, &s),
                "round {round}: pattern {:?} string {:?}",
                String::from_utf8_lossy(&p),
                String::from_utf8_lossy(&s)
            );
        }
        // Full byte range (like Redis's own stringmatchlen_fuzz_test), incl. signed ranges.
        for round in 0..100_000 {
            let (plen, slen) = (rng.below(12), rng.below(8));
            let p: Vec<u8> = (0..plen)
                .map(|_| match rng.below(6) {
                    0 => b'*',
                    1 => b'[',
                    2 => b'-',
                    _ => rng.byte(),
                })
                .collect();
            let s: Vec<u8> = (0..slen).map(|_| rng.byte()).collect();
            assert_eq!(
                glob_match(&p, &s),
                reference(&p, &s),
                "round {round}: {p:?} {s:?}"
            );
        }
    }
}
