package token

import (
	"unicode"
	"unicode/utf8"
)

// nameShowsWhatItIs reports whether a token name (valid UTF-8, not blank)
// shows what it is: no control characters, no bidirectional controls (a
// name "\u202egnp.exe" shows as "exe.png"), no Unicode tag characters (an
// invisible payload), no leading byte order mark, and at least one visible
// character once whitespace, zero-width and other invisible characters
// are set aside. Zero-width joiners inside emoji sequences are fine: they
// sit beside visible characters.
func nameShowsWhatItIs(name string) bool {
	visible := false
	for i, r := range name {
		switch {
		case i == 0 && r == '\uFEFF',
			unicode.IsControl(r),
			unicode.In(r, unicode.Zl, unicode.Zp),
			unicode.Is(unicode.Bidi_Control, r),
			r >= 0xE0000 && r <= 0xE007F: // tags
			return false
		case !visible && !invisible(r):
			visible = true
		}
	}
	return visible
}

// invisible reports whether r draws nothing on its own: white space,
// format characters (zero-width space, joiners, word joiner, BOM),
// default-ignorable code points (Hangul fillers, variation selectors),
// combining marks without a base, and the blank Braille pattern.
func invisible(r rune) bool {
	return r == utf8.RuneError ||
		unicode.IsSpace(r) ||
		unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) ||
		r == '\u2800' || r == '\u3164' || r == '\uFFA0'
}
