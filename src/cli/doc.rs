//! A small document model (headings, paragraphs, lists, tables) written out as
//! Markdown or as a self-contained HTML page, so `report` is composed once.

pub enum Block {
    H1(String),
    H2(String),
    P(String),
    List(Vec<String>),
    Table(Vec<String>, Vec<Vec<String>>),
}

/// Markdown text: `<`, `>` and `&` as entities, so a reason or an error line
/// (typed by an operator, or holding a file name) is never markup where the
/// report is rendered.
fn md(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn md_cell(s: &str) -> String {
    md(s).replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::H1(t) => out.push_str(&format!("# {}\n\n", md(t))),
            Block::H2(t) => out.push_str(&format!("## {}\n\n", md(t))),
            Block::P(t) => out.push_str(&format!("{}\n\n", md(t))),
            Block::List(items) => {
                for i in items {
                    out.push_str(&format!("- {}\n", md(i)));
                }
                out.push('\n');
            }
            Block::Table(head, rows) => {
                let line = |cells: &[String]| {
                    format!(
                        "| {} |\n",
                        cells
                            .iter()
                            .map(|c| md_cell(c))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    )
                };
                out.push_str(&line(head));
                out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
                for r in rows {
                    out.push_str(&line(r));
                }
                out.push('\n');
            }
        }
    }
    out
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#1d2330}}table{{border-collapse:collapse;margin:8px 0 18px}}td,th{{border:1px solid #ccd;padding:3px 8px;text-align:left;vertical-align:top}}th{{background:#eef}}</style></head><body>\n",
        escape(title)
    );
    for b in blocks {
        match b {
            Block::H1(t) => out.push_str(&format!("<h1>{}</h1>\n", escape(t))),
            Block::H2(t) => out.push_str(&format!("<h2>{}</h2>\n", escape(t))),
            Block::P(t) => out.push_str(&format!("<p>{}</p>\n", escape(t))),
            Block::List(items) => {
                out.push_str("<ul>\n");
                for i in items {
                    out.push_str(&format!("<li>{}</li>\n", escape(i)));
                }
                out.push_str("</ul>\n");
            }
            Block::Table(head, rows) => {
                out.push_str("<table>\n<tr>");
                for h in head {
                    out.push_str(&format!("<th>{}</th>", escape(h)));
                }
                out.push_str("</tr>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        out.push_str(&format!("<td>{}</td>", escape(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_text_are_escaped() {
        let b = vec![
            Block::P("a <b> & \"c\"".into()),
            Block::Table(vec!["x|y".into()], vec![vec!["1|2".into()]]),
        ];
        assert!(markdown(&b).contains("| x\\|y |\n|---|\n| 1\\|2 |"));
        let h = html("t", &b);
        assert!(h.contains("<p>a &lt;b&gt; &amp; &quot;c&quot;</p>"));
        assert!(!h.contains("<b>"));
    }
}
