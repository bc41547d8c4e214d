//! Untrusted text made safe to print, and measured in terminal columns.

/// Strips everything a terminal would interpret rather than show: escape sequences (CSI, OSC,
/// DCS and friends, in their 7-bit and 8-bit forms), the remaining C0/C1 control characters,
/// and the bidirectional overrides that could make one request look like another.
/// Tabs and line breaks become spaces so a value cannot spill onto another row.
pub(crate) fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // Two-character escapes, plus the intermediates of e.g. `ESC ( B`.
                Some(c2) if ('\x20'..='\x2f').contains(&c2) => {
                    chars.next();
                }
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{9d}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    // Parameters and intermediates run until the final byte in 0x40..=0x7e; anything outside
    // that grammar ends the sequence too, so a malformed one cannot swallow the whole value.
    for c in chars.by_ref() {
        if !('\x20'..='\x3f').contains(&c) {
            break;
        }
    }
}

fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    // OSC/DCS bodies end at BEL or ST (`ESC \` or U+009C).
    while let Some(c) = chars.next() {
        match c {
            '\x07' | '\u{9c}' => break,
            '\x1b' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Columns a character occupies: a close approximation of `wcwidth` covering combining marks
/// and the East Asian wide ranges, which is what matters for keeping rows inside the screen.
pub(crate) fn char_width(c: char) -> usize {
    let u = c as u32;
    match u {
        0x0300..=0x036f
        | 0x0483..=0x0489
        | 0x0591..=0x05bd
        | 0x0610..=0x061a
        | 0x064b..=0x065f
        | 0x200b..=0x200f
        | 0x20d0..=0x20ff
        | 0xfe00..=0xfe0f
        | 0xfe20..=0xfe2f
        | 0xfeff => 0,
        0x1100..=0x115f
        | 0x231a..=0x231b
        | 0x2329..=0x232a
        | 0x23e9..=0x23ec
        | 0x2e80..=0x303e
        | 0x3041..=0x33ff
        | 0x3400..=0x4dbf
        | 0x4e00..=0x9fff
        | 0xa000..=0xa4cf
        | 0xa960..=0xa97f
        | 0xac00..=0xd7a3
        | 0xf900..=0xfaff
        | 0xfe10..=0xfe19
        | 0xfe30..=0xfe6f
        | 0xff00..=0xff60
        | 0xffe0..=0xffe6
        | 0x1f300..=0x1f64f
        | 0x1f900..=0x1f9ff
        | 0x20000..=0x3fffd => 2,
        _ => 1,
    }
}

/// Columns `s` occupies once printed.
pub(crate) fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// The longest prefix of `s` that fits in `cols` columns, and the columns it uses.
pub(crate) fn fit(s: &str, cols: usize) -> (&str, usize) {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = char_width(c);
        if used + w > cols {
            return (&s[..i], used);
        }
        used += w;
    }
    (s, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escape_sequences_and_controls() {
        assert_eq!(sanitize("/a\x1b[2Jb"), "/ab");
        assert_eq!(sanitize("/\x1b[38;5;196mred\x1b[0m"), "/red");
        assert_eq!(sanitize("x\x1b]0;title\x07y"), "xy");
        assert_eq!(sanitize("x\x1b]8;;http://e\x1b\\y"), "xy");
        assert_eq!(sanitize("x\x1bcy\x1b(Bz"), "xyz");
        assert_eq!(sanitize("x\u{9b}2Jy\u{7f}\u{0}z"), "xyz");
        assert_eq!(sanitize("a\tb\r\nc"), "a b  c");
        assert_eq!(sanitize("ab\u{202e}cd"), "abcd");
        assert_eq!(sanitize("trailing\x1b"), "trailing");
        assert_eq!(sanitize("/héllo/日本"), "/héllo/日本");
    }

    #[test]
    fn measures_and_fits_wide_characters() {
        assert_eq!(width("日本"), 4);
        assert_eq!(width("e\u{301}"), 1);
        assert_eq!(fit("日本語", 5), ("日本", 4));
        assert_eq!(fit("abc", 5), ("abc", 3));
        assert_eq!(fit("abc", 0), ("", 0));
    }
}
