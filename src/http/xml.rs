//! XML for the dialects that speak it, safe against hostile input.
//!
//! Reading: no DTD (a DOCTYPE is refused, so no entity can be declared), no entity reference
//! beyond the five predefined ones and character references, bounded depth; the body size is
//! bounded before parsing. Writing: every text and attribute value is escaped.

use quick_xml::Reader;
use quick_xml::events::Event;

/// Deepest element nesting a request may have.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("a DOCTYPE is not allowed")]
    DocType,
    #[error("entity &{0}; is not allowed")]
    Entity(String),
    #[error("elements nest deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// A parsed document as its text leaves: `("request/zapiMethod/cartId", "abc")`, in document
/// order, plus the root element's name.
#[derive(Debug, Default)]
pub struct Leaves {
    pub root: String,
    pub leaves: Vec<(String, String)>,
}

impl Leaves {
    /// The text of the first element at `path`, trimmed.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.leaves
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, text)| text.trim())
    }
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

pub fn parse(input: &str) -> Result<Leaves, XmlError> {
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let mut reader = Reader::from_str(input);
    reader.config_mut().check_end_names = true;
    let mut document = Leaves::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut roots = 0;
    loop {
        match reader.read_event().map_err(|e| malformed(&e))? {
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Start(start) | Event::Empty(start) if path.len() >= MAX_DEPTH => {
                let _ = start;
                return Err(XmlError::TooDeep);
            }
            Event::Start(start) => {
                if path.is_empty() {
                    roots += 1;
                    document.root =
                        String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                }
                path.push(String::from_utf8_lossy(start.local_name().as_ref()).into_owned());
                text.clear();
            }
            Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    roots += 1;
                    document.root = name.clone();
                }
                let mut full = path.clone();
                full.push(name);
                document.leaves.push((full.join("/"), String::new()));
            }
            Event::End(_) => {
                document
                    .leaves
                    .push((path.join("/"), std::mem::take(&mut text)));
                path.pop();
            }
            Event::Text(t) => {
                let decoded = t.decode().map_err(|e| malformed(&e))?;
                if path.is_empty() {
                    if !decoded.trim().is_empty() {
                        return Err(XmlError::Malformed("text outside the root element".into()));
                    }
                } else {
                    text.push_str(&decoded);
                }
            }
            Event::CData(c) => {
                let decoded = c.decode().map_err(|e| malformed(&e))?;
                text.push_str(&decoded);
            }
            Event::GeneralRef(reference) => {
                if reference.is_char_ref() {
                    match reference.resolve_char_ref().map_err(|e| malformed(&e))? {
                        Some(c) => text.push(c),
                        None => return Err(XmlError::Malformed("bad character reference".into())),
                    }
                } else {
                    let name = reference.decode().map_err(|e| malformed(&e))?;
                    match predefined_entity(&name) {
                        Some(c) => text.push(c),
                        None => return Err(XmlError::Entity(name.into_owned())),
                    }
                }
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if roots != 1 || !path.is_empty() {
        return Err(XmlError::Malformed(
            "expected exactly one root element".into(),
        ));
    }
    Ok(document)
}

/// Escapes text or an attribute value.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_leaves_by_path() {
        let doc = parse(
            "<?xml version=\"1.0\"?><request><a>1</a><m><name>x &amp; y</name><id>&#65;</id><e/></m></request>",
        )
        .unwrap();
        assert_eq!(doc.root, "request");
        assert_eq!(doc.get("request/a"), Some("1"));
        assert_eq!(doc.get("request/m/name"), Some("x & y"));
        assert_eq!(doc.get("request/m/id"), Some("A"));
        assert_eq!(doc.get("request/m/e"), Some(""));
        assert_eq!(doc.get("request/missing"), None);
    }

    #[test]
    fn refuses_dtds_entities_depth_and_garbage() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaa\">]><r>&a;</r>";
        assert_eq!(parse(bomb).unwrap_err(), XmlError::DocType);
        assert_eq!(
            parse("<r>&a;</r>").unwrap_err(),
            XmlError::Entity("a".into())
        );
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep).unwrap_err(), XmlError::TooDeep);
        for bad in ["", "<a>", "<a></b>", "<a/><b/>", "text", "<a>1</a>tail"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
