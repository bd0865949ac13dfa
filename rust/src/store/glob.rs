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
/// Compiles the pattern on every call: a caller matching many strings keeps a [`Glob`].
#[must_use]
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    Glob::new(pattern).matches(string)
}

/// A compiled glob pattern: match it against many strings in time linear in each string.
///
/// Every token other than `*` consumes exactly one byte and its verdict depends on that byte
/// only, so the pattern is a run of fixed-width segments separated by `*`s: the first is
/// anchored at the start, the last (when the pattern does not end with `*`) at the end, and
/// each one between them is placed at its leftmost occurrence after the previous one (a
/// later placement can only leave less room for the rest). That is the answer of Redis's
/// backtracking recursion, found without backtracking: each byte of the string is visited
/// once, at a cost of one word operation per 64 tokens of the segment being searched
/// (bit-parallel shift-and), so a match costs `O(len(string) * (1 + len(segment) / 64))`.
#[derive(Debug, Clone)]
pub struct Glob {
    /// `accepts[c * words + w]`: bit `t % 64` of word `w = t / 64` is set when token `t`
    /// (counting non-`*` tokens from 0) accepts byte `c`.
    accepts: Vec<u64>,
    words: usize,
    /// Token ranges `start..end` of the segments, in order; the first and last are anchored
    /// as `starred` says.
    segments: Vec<(usize, usize)>,
    /// No `*` at all: the only segment must cover the whole string.
    starred: bool,
    /// The pattern ends with `*`: the last segment floats like a middle one.
    open_end: bool,
    /// More than 1000 nested `*` groups: Redis gives up and matches nothing.
    dead: bool,
    /// Bytes of the pattern before its first `*` token (the whole pattern when it has none).
    head_len: usize,
}

impl Glob {
    /// Compiles `pattern` in `O(256 * len(pattern))` time.
    #[must_use]
    pub fn new(pattern: &[u8]) -> Self {
        let mut sets: Vec<usize> = Vec::new(); // pattern index of each non-`*` token
        let mut segments = Vec::new();
        let mut seg_start = 0;
        let mut starred = false;
        let mut open_end = false;
        let mut head_len = pattern.len();
        let mut i = 0;
        while i < pattern.len() {
            if pattern[i] == b'*' {
                if !starred {
                    head_len = i;
                }
                starred = true;
                segments.push((seg_start, sets.len()));
                while i < pattern.len() && pattern[i] == b'*' {
                    i += 1;
                }
                seg_start = sets.len();
                open_end = i == pattern.len();
            } else {
                sets.push(i);
                i = single(pattern, i, 0).1;
            }
        }
        if !open_end {
            segments.push((seg_start, sets.len()));
        }
        let words = sets.len().div_ceil(64);
        let mut accepts = vec![0u64; 256 * words];
        for (t, &at) in sets.iter().enumerate() {
            for c in 0..=255u8 {
                if single(pattern, at, c).0 {
                    accepts[usize::from(c) * words + t / 64] |= 1 << (t % 64);
                }
            }
        }
        Self {
            accepts,
            words,
            segments,
            starred,
            open_end,
            dead: exceeds_star_nesting(pattern),
            head_len,
        }
    }

    /// Bytes of the pattern before its first `*` token (all of it when it has none).
    #[must_use]
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// True when nothing but `*`s follows the head: Redis then matches without backtracking.
    #[must_use]
    pub fn is_head_only(&self) -> bool {
        !self.starred || (self.open_end && self.segments.len() == 1)
    }

    /// Whether `string` matches, with Redis's answer (see the module docs).
    #[must_use]
    pub fn matches(&self, string: &[u8]) -> bool {
        let mut steps = 0;
        self.matches_counted(string, &mut steps)
    }

    /// [`Glob::matches`]; `steps` counts the bytes visited (for the complexity tests).
    fn matches_counted(&self, string: &[u8], steps: &mut u64) -> bool {
        if string.is_empty() {
            // Only the empty pattern (no token, no `*`) matches it.
            return !self.starred && self.segments[0] == (0, 0);
        }
        if self.dead {
            return false;
        }
        let (first, rest) = self
            .segments
            .split_first()
            .map_or(((0, 0), &[][..]), |(f, r)| (*f, r));
        let width = first.1 - first.0;
        if !self.starred {
            return width == string.len() && self.fits(first, string, 0, steps);
        }
        if width > string.len() || !self.fits(first, string, 0, steps) {
            return false;
        }
        let mut pos = width;
        let (middle, last) = if self.open_end {
            (rest, None)
        } else {
            let (last, middle) = rest
                .split_last()
                .expect("a closed pattern has a last segment");
            (middle, Some(*last))
        };
        for &segment in middle {
            match self.find(segment, string, pos, steps) {
                Some(end) => pos = end,
                None => return false,
            }
        }
        match last {
            None => true,
            Some(segment) => {
                let width = segment.1 - segment.0;
                string.len() - pos >= width
                    && self.fits(segment, string, string.len() - width, steps)
            }
        }
    }

    fn accepts(&self, token: usize, c: u8) -> bool {
        self.accepts[usize::from(c) * self.words + token / 64] >> (token % 64) & 1 == 1
    }

    /// Whether the tokens of `segment` accept `string[at..]` one by one.
    fn fits(
        &self,
        (start, end): (usize, usize),
        string: &[u8],
        at: usize,
        steps: &mut u64,
    ) -> bool {
        (start..end).zip(&string[at..]).all(|(t, &c)| {
            *steps += 1;
            self.accepts(t, c)
        })
    }

    /// The end of the leftmost occurrence of `segment` in `string[from..]` (shift-and over
    /// the segment's words of `accepts`), or None.
    fn find(
        &self,
        (start, end): (usize, usize),
        string: &[u8],
        from: usize,
        steps: &mut u64,
    ) -> Option<usize> {
        if start == end {
            return Some(from);
        }
        let (lo, hi) = (start / 64, (end - 1) / 64);
        let last_bit = 1u64 << ((end - 1) % 64);
        // Bit t set in `state`: tokens start..=t accept the bytes just read. Bits below
        // `start` never get set (nothing shifts into them); bits past `end` are ignored.
        let mut state = vec![0u64; hi - lo + 1];
        for (j, &c) in string.iter().enumerate().skip(from) {
            *steps += 1;
            let row = &self.accepts[usize::from(c) * self.words..];
            let mut carry = 0;
            for (w, word) in state.iter_mut().enumerate() {
                let shifted = (*word << 1) | carry;
                carry = *word >> 63;
                *word = shifted;
                if w == 0 {
                    *word |= 1 << (start % 64);
                }
                *word &= row[lo + w];
            }
            if state[hi - lo] & last_bit != 0 {
                return Some(j + 1);
            }
        }
        None
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
    use crate::store::test_rng::Rng;

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

    fn same_as_reference(round: usize, p: &[u8], s: &[u8]) {
        assert_eq!(
            glob_match(p, s),
            reference(p, s),
            "round {round}: pattern {:?} string {:?}",
            String::from_utf8_lossy(p),
            String::from_utf8_lossy(s)
        );
    }

    fn steps(p: &[u8], s: &[u8]) -> (bool, u64) {
        let mut n = 0;
        let m = Glob::new(p).matches_counted(s, &mut n);
        (m, n)
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
    fn hostile_patterns_visit_each_byte_once() {
        let s = vec![b'a'; 10_000];
        // Each byte of the string is visited at most once, plus the anchored segments.
        let linear = |p: &[u8]| s.len() as u64 + p.len() as u64;
        let p = b"a*a*a*a*a*a*a*a*a*a*a*a*b";
        let (m, n) = steps(p, &s);
        assert!(!m);
        assert!(n <= linear(p), "{n} steps");

        // The worst case of backtracking (Redis, and this matcher before): a long literal
        // tail after one `*` was rescanned from every position of the string.
        let mut p = vec![b'*'];
        p.extend(std::iter::repeat_n(b'a', 510));
        p.push(b'b');
        let (m, n) = steps(&p, &s);
        assert!(!m);
        assert!(n <= linear(&p), "{n} steps");
        let (m, n) = steps(&p[..p.len() - 1], &s);
        assert!(m);
        assert!(n <= linear(&p), "{n} steps");

        // Many stars and classes against a long non-matching key.
        let p = b"*[ab]*?*[^c]*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c".repeat(20);
        let (m, n) = steps(&p, &s);
        assert!(!m);
        assert!(n <= linear(&p), "{n} steps");

        // A segment longer than one word, found at the very end.
        let mut s2 = vec![b'x'; 10_000];
        s2.extend(std::iter::repeat_n(b'y', 200));
        s2.push(b'z');
        let mut p = b"*".to_vec();
        p.extend(std::iter::repeat_n(b'y', 150));
        p.extend_from_slice(b"z*");
        let (m, n) = steps(&p, &s2);
        assert!(m);
        assert!(n <= s2.len() as u64 + p.len() as u64, "{n} steps");
    }

    #[test]
    fn long_segments_against_reference() {
        // Segments of 60..140 tokens straddle word boundaries of the shift-and state.
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        for round in 0..2_000 {
            let mut p = Vec::new();
            for _ in 0..=rng.below(3) {
                if rng.below(2) == 0 {
                    p.push(b'*');
                }
                for _ in 0..60 + rng.below(80) {
                    p.push(match rng.below(8) {
                        0 => b'?',
                        1 => b'b',
                        _ => b'a',
                    });
                }
            }
            if rng.below(2) == 0 {
                p.push(b'*');
            }
            let s: Vec<u8> = (0..rng.below(400))
                .map(|_| if rng.below(30) == 0 { b'b' } else { b'a' })
                .collect();
            same_as_reference(round, &p, &s);
        }
    }

    #[test]
    fn head_and_head_only() {
        let head = |p: &[u8]| {
            let g = Glob::new(p);
            (g.head_len(), g.is_head_only())
        };
        assert_eq!(head(b"user:*"), (5, true));
        assert_eq!(head(b"user:**"), (5, true));
        assert_eq!(head(b"user:1"), (6, true));
        assert_eq!(head(b"*"), (0, true));
        assert_eq!(head(b"*a"), (0, false));
        assert_eq!(head(b"a*b*"), (1, false));
        assert_eq!(head(br"a\\*b"), (3, false)); // `a\\` is `a` and an escaped backslash
        assert_eq!(head(br"a\\*"), (3, true));
        assert_eq!(head(br"a\*b"), (4, true)); // an escaped `*` is a literal
        assert_eq!(head(br"\\*"), (2, true));
        assert_eq!(head(b"[*]x"), (4, true)); // a `*` in a class is not a star
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
            same_as_reference(round, &p, &s);
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
