//! A mail's body written once, as content: paragraphs of prose and links on their own.
//! Both bodies are rendered from it, so they say the same words: the text one in
//! paragraphs separated by a blank line, the HTML one in `<p>`s with every value
//! escaped.

use std::fmt::Write as _;

use super::OutgoingMail;

enum Block {
    Paragraph(String),
    /// A URL, shown on its own and, in HTML, linked.
    Link(String),
}

#[derive(Default)]
pub(super) struct Content(Vec<Block>);

impl Content {
    pub(super) fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub(super) fn paragraph(mut self, text: impl Into<String>) -> Self {
        self.0.push(Block::Paragraph(text.into()));
        self
    }

    #[must_use]
    pub(super) fn link(mut self, url: impl Into<String>) -> Self {
        self.0.push(Block::Link(url.into()));
        self
    }

    pub(super) fn text(&self) -> String {
        self.0
            .iter()
            .map(|block| match block {
                Block::Paragraph(text) | Block::Link(text) => text.as_str(),
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    pub(super) fn html(&self) -> String {
        let mut html = String::new();
        for block in &self.0 {
            // Writing to a String cannot fail.
            let _ = match block {
                Block::Paragraph(text) => write!(html, "<p>{}</p>", escape(text)),
                Block::Link(url) => {
                    let url = escape(url);
                    write!(html, "<p><a href=\"{url}\">{url}</a></p>")
                }
            };
        }
        html
    }

    /// The mail to `to`, with both bodies.
    pub(super) fn into_mail(self, to: &str, subject: String) -> OutgoingMail {
        OutgoingMail {
            to: to.to_owned(),
            subject,
            text: self.text(),
            html: self.html(),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_bodies_and_escapes_html() {
        let content = Content::new()
            .paragraph("Tom & Jerry <3 \"quotes\" 'n' all.")
            .link("https://app.example/r?a=1&b=\"2\"");
        assert_eq!(
            content.text(),
            "Tom & Jerry <3 \"quotes\" 'n' all.\n\nhttps://app.example/r?a=1&b=\"2\""
        );
        assert_eq!(
            content.html(),
            "<p>Tom &amp; Jerry &lt;3 &quot;quotes&quot; &#39;n&#39; all.</p>\
             <p><a href=\"https://app.example/r?a=1&amp;b=&quot;2&quot;\">\
             https://app.example/r?a=1&amp;b=&quot;2&quot;</a></p>"
        );
    }
}
