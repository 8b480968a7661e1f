//! TEXT content to plain text, as `providers/ccmessaging.md` describes.
//!
//! ccmessaging web chat text is often an HTML fragment from a rich-text box
//! (`<p>hi</p>`, `line<br/>two`); the API serves plain text and keeps the
//! original in `raw`. Tags are read by a small scanner that only has to know
//! where a tag starts and ends and which ones break a line; the entities,
//! where the long tail is (every HTML5 named and numeric entity), are
//! decoded by the `html-escape` crate so the table is not ours to keep.

/// Tags whose end (or, for `br`, whose presence) is a line break.
const LINE_BREAKING_ENDS: [&str; 5] = ["p", "div", "li", "tr", "br"];
/// Tags dropped together with their content.
const DROPPED_WITH_CONTENT: [&str; 2] = ["script", "style"];

/// HTML to text: `<br>` and the ends of `p`, `div`, `li`, `tr` become line
/// breaks; `script` and `style` go with their content; other tags are
/// removed; entities are decoded (`&nbsp;` to a plain space); runs of blank
/// lines become one; outer whitespace is trimmed.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        push_text(&mut text, &rest[..i]);
        let after = &rest[i + 1..];
        match tag_at(after) {
            Some(tag) => {
                if tag.line_break() {
                    text.push('\n');
                }
                rest = &after[tag.len..];
                if let Some(name) = tag.dropped_content() {
                    rest = skip_past_end_tag(rest, name);
                }
            }
            None => {
                text.push('<');
                rest = after;
            }
        }
    }
    push_text(&mut text, rest);
    tidy(&text)
}

/// A markup construct starting right after a `<`.
#[derive(Debug)]
struct Tag {
    /// Lower-case element name; empty for comments, doctypes and
    /// processing instructions.
    name: String,
    /// `</name>`.
    closing: bool,
    /// Bytes from after the `<` to after the closing `>`.
    len: usize,
}

impl Tag {
    fn line_break(&self) -> bool {
        match self.name.as_str() {
            "br" => true,
            name => self.closing && LINE_BREAKING_ENDS.contains(&name),
        }
    }

    /// The element whose content is to be skipped, when this opens one.
    fn dropped_content(&self) -> Option<&'static str> {
        if self.closing {
            return None;
        }
        DROPPED_WITH_CONTENT
            .iter()
            .copied()
            .find(|n| *n == self.name)
    }
}

/// The tag, comment or declaration at the start of `s` (just after a `<`);
/// `None` when this `<` is text (`1 < 2`, `<3`, a tag never closed).
fn tag_at(s: &str) -> Option<Tag> {
    if let Some(comment) = s.strip_prefix("!--") {
        let end = comment.find("-->")?;
        return Some(Tag {
            name: String::new(),
            closing: false,
            len: 3 + end + 3,
        });
    }
    let first = s.chars().next()?;
    if matches!(first, '!' | '?') {
        let end = s.find('>')?;
        return Some(Tag {
            name: String::new(),
            closing: false,
            len: end + 1,
        });
    }
    let (closing, body) = match s.strip_prefix('/') {
        Some(b) => (true, b),
        None => (false, s),
    };
    if !body.chars().next()?.is_ascii_alphabetic() {
        return None;
    }
    let end = s.find('>')?;
    let name: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    Some(Tag {
        name,
        closing,
        len: end + 1,
    })
}

/// What follows the end tag `</name…>` (any case), or nothing when the
/// element is never closed.
fn skip_past_end_tag<'a>(s: &'a str, name: &str) -> &'a str {
    let lower = s.to_ascii_lowercase();
    let needle = format!("</{name}");
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle) {
        let start = from + i;
        let after_name = start + needle.len();
        let boundary = lower[after_name..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric());
        if boundary {
            return match s[after_name..].find('>') {
                Some(end) => &s[after_name + end + 1..],
                None => "",
            };
        }
        from = after_name;
    }
    ""
}

/// Appends a run of text with its entities decoded; a no-break space
/// (`&nbsp;`, U+00A0) becomes a plain one.
fn push_text(out: &mut String, raw: &str) {
    if raw.is_empty() {
        return;
    }
    let decoded = html_escape::decode_html_entities(raw);
    out.extend(decoded.chars().map(|c| match c {
        '\u{a0}' => ' ',
        c => c,
    }));
}

/// Trailing spaces off each line, at most one blank line in a row, and no
/// outer whitespace.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_string()
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
    }

    #[test]
    fn line_breaking_tags_become_line_breaks() {
        assert_eq!(html_to_text("line<br/>two<!-- a > b -->!"), "line\ntwo!");
        assert_eq!(html_to_text("a<BR>b<br />c"), "a\nb\nc");
        assert_eq!(html_to_text("<p>one</p><p>two</p>"), "one\ntwo");
        assert_eq!(html_to_text("<div>x</div><div>y</div>"), "x\ny");
        assert_eq!(
            html_to_text("<ul><li>first</li><li>second</li></ul>"),
            "first\nsecond"
        );
        assert_eq!(
            html_to_text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"),
            "ab\nc"
        );
        assert_eq!(
            html_to_text("a<br><br><br><br>b"),
            "a\n\nb",
            "blank runs collapse"
        );
        assert_eq!(html_to_text("<span>in</span>line"), "inline");
    }

    #[test]
    fn every_html5_entity_is_decoded() {
        assert_eq!(
            html_to_text("&hearts;&rarr;&alpha;&Omega;&frac12;"),
            "♥→αΩ½"
        );
        assert_eq!(html_to_text("&NotEqualTilde;"), "≂\u{338}");
        assert_eq!(html_to_text("&hellip;&mdash;&euro;&yen;"), "…—€¥");
        assert_eq!(html_to_text("&#x2764;&#65;"), "❤A");
    }

    #[test]
    fn scripts_and_styles_go_with_their_content() {
        assert_eq!(html_to_text("a<script>alert('<p>x</p>')</script>b"), "ab");
        assert_eq!(html_to_text("<STYLE type=x>p{}</Style>c"), "c");
        assert_eq!(html_to_text("a<script>never closed"), "a");
        assert_eq!(html_to_text("<scripts>kept</scripts>"), "kept");
    }

    #[test]
    fn escaped_markup_stays_text_after_decoding() {
        assert_eq!(html_to_text("&lt;p&gt;x&lt;/p&gt;"), "<p>x</p>");
        assert_eq!(html_to_text("&lt;br&gt;"), "<br>");
    }

    #[test]
    fn things_that_are_not_markup_are_kept() {
        assert_eq!(html_to_text("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2");
        assert_eq!(html_to_text("<3 & you"), "<3 & you");
        assert_eq!(html_to_text("a &unknown; b"), "a &unknown; b");
        assert_eq!(html_to_text("<b unclosed"), "<b unclosed");
        assert_eq!(html_to_text("  \n plain \t "), "plain");
    }
}
