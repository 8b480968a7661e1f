//! TEXT content to plain text: tags removed, entities decoded.
//!
//! ccmessaging web chat text is often an HTML fragment (`<p>hi</p>`); the
//! API serves plain text and keeps the original in `raw`. A small decoder is
//! enough: the fragments come from a rich-text box, not arbitrary documents.

/// Removes tags, decodes named and numeric entities (`&nbsp;` and U+00A0
/// become a plain space) and trims outer whitespace.
pub(crate) fn html_to_text(html: &str) -> String {
    decode_entities(&strip_tags(html)).trim().to_string()
}

/// Removes `<tag …>`, `</tag>`, `<!-- … -->` and `<!…>`/`<?…>`; a `<` not
/// starting a tag (`1 < 2`, `<3`) or never closed is kept as text.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = if let Some(comment) = after.strip_prefix("!--") {
            comment.find("-->").map(|j| 3 + j + 3)
        } else if after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'))
        {
            after.find('>').map(|j| j + 1)
        } else {
            None
        };
        match end {
            Some(end) => rest = &after[end..],
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes `&name;`, `&#123;` and `&#x1F600;`; anything else stays as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let decoded = after
            .find(';')
            .filter(|&end| end > 0 && end <= 32)
            .and_then(|end| entity(&after[..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One entity body (between `&` and `;`) to its character.
fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse::<u32>().ok()?,
        };
        return match char::from_u32(code)? {
            '\0' => None,
            '\u{a0}' => Some(' '),
            c => Some(c),
        };
    }
    let c = match name {
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "middot" => '·',
        "bull" => '•',
        "times" => '×',
        "divide" => '÷',
        "deg" => '°',
        "plusmn" => '±',
        "yen" => '¥',
        "euro" => '€',
        "pound" => '£',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        _ => return None,
    };
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn paragraphs_and_entities_become_plain_text() {
        assert_eq!(html_to_text("<p>32131</p>"), "32131");
        assert_eq!(
            html_to_text("<p class=\"x\">a &lt;b&gt; &amp; c</p>"),
            "a <b> & c"
        );
        assert_eq!(html_to_text("&nbsp; 你好&nbsp;世界 &#160;"), "你好 世界");
        assert_eq!(html_to_text("&#20320;&#x597D; &#x1F600;"), "你好 😀");
        assert_eq!(html_to_text("line<br/>two<!-- a > b -->!"), "linetwo!");
    }

    #[test]
    fn escaped_markup_stays_text_after_decoding() {
        assert_eq!(html_to_text("&lt;p&gt;x&lt;/p&gt;"), "<p>x</p>");
    }

    #[test]
    fn things_that_are_not_markup_are_kept() {
        assert_eq!(html_to_text("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2");
        assert_eq!(html_to_text("<3 & you"), "<3 & you");
        assert_eq!(html_to_text("a &unknown; b &amp"), "a &unknown; b &amp");
        assert_eq!(html_to_text("<b unclosed"), "<b unclosed");
        assert_eq!(
            html_to_text("&#0; &#xZZ; &#99999999;"),
            "&#0; &#xZZ; &#99999999;"
        );
        assert_eq!(html_to_text("  \n plain \t "), "plain");
    }
}
