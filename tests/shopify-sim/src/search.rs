//! Shopify's search syntax, the part a channel uses: `field:value`, comparators
//! (`:>`, `:>=`, `:<`, `:<=`), quoted values, `NOT`/`-` negation, `AND` (also implicit), `OR`
//! (binding looser than AND), parentheses, prefix wildcards (`sku:ABC*`), `tag_not:x`, and bare
//! words (matched against the resource's text, e.g. the title).

use chrono::{DateTime, NaiveDate, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    pub field: Option<String>,
    pub cmp: Cmp,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Term(Term),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// A parsed query; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub expr: Option<Expr>,
}

/// A value an entity exposes for a search field.
pub enum FieldVal {
    Text(String),
    Num(f64),
    Time(DateTime<Utc>),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
}

fn tokenize(q: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let flush = |cur: &mut String, out: &mut Vec<Tok>| {
        if !cur.is_empty() {
            out.push(Tok::Word(std::mem::take(cur)));
        }
    };
    for c in q.chars() {
        match quote {
            Some(qc) if c == qc => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c.is_whitespace() => flush(&mut cur, &mut out),
            // A parenthesis opens a group only at the start of a word; inside a value it is text.
            None if c == '(' && cur.is_empty() => out.push(Tok::Open),
            None if c == ')' => {
                flush(&mut cur, &mut out);
                out.push(Tok::Close);
            }
            None => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn or(&mut self) -> Option<Expr> {
        let mut alts = Vec::new();
        loop {
            if let Some(e) = self.and() {
                alts.push(e);
            }
            match self.peek() {
                Some(Tok::Word(w)) if w == "OR" => self.pos += 1,
                _ => break,
            }
        }
        match alts.len() {
            0 => None,
            1 => alts.pop(),
            _ => Some(Expr::Or(alts)),
        }
    }

    fn and(&mut self) -> Option<Expr> {
        let mut all = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Close) => break,
                Some(Tok::Word(w)) if w == "OR" => break,
                Some(Tok::Word(w)) if w == "AND" => self.pos += 1,
                _ => {
                    if let Some(e) = self.unary() {
                        all.push(e);
                    }
                }
            }
        }
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Expr::And(all)),
        }
    }

    fn unary(&mut self) -> Option<Expr> {
        let tok = self.peek()?.clone();
        self.pos += 1;
        match tok {
            Tok::Open => {
                let e = self.or();
                if self.peek() == Some(&Tok::Close) {
                    self.pos += 1;
                }
                e
            }
            Tok::Close => None,
            Tok::Word(w) if w == "NOT" => self.unary().map(|e| Expr::Not(Box::new(e))),
            Tok::Word(w) => match w.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => Some(Expr::Not(Box::new(term(rest)))),
                _ => Some(term(&w)),
            },
        }
    }
}

fn term(body: &str) -> Expr {
    match body.split_once(':') {
        Some((field, rest)) if !field.is_empty() => {
            let (cmp, value) = if let Some(v) = rest.strip_prefix(">=") {
                (Cmp::Ge, v)
            } else if let Some(v) = rest.strip_prefix("<=") {
                (Cmp::Le, v)
            } else if let Some(v) = rest.strip_prefix('>') {
                (Cmp::Gt, v)
            } else if let Some(v) = rest.strip_prefix('<') {
                (Cmp::Lt, v)
            } else {
                (Cmp::Eq, rest)
            };
            let field = field.to_ascii_lowercase();
            // `tag_not:x` is `NOT tag:x`.
            if field == "tag_not" {
                let t = Term {
                    field: Some("tag".into()),
                    cmp,
                    value: value.to_string(),
                };
                return Expr::Not(Box::new(Expr::Term(t)));
            }
            Expr::Term(Term {
                field: Some(field),
                cmp,
                value: value.to_string(),
            })
        }
        _ => Expr::Term(Term {
            field: None,
            cmp: Cmp::Eq,
            value: body.to_string(),
        }),
    }
}

pub fn parse(q: &str) -> Query {
    let mut p = Parser {
        toks: tokenize(q),
        pos: 0,
    };
    let mut parts = Vec::new();
    // Stray closing parentheses are skipped rather than ending the query.
    while p.pos < p.toks.len() {
        if let Some(e) = p.or() {
            parts.push(e);
        }
        if p.peek() == Some(&Tok::Close) {
            p.pos += 1;
        }
    }
    let expr = match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Expr::And(parts)),
    };
    Query { expr }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

fn matches_one(cmp: Cmp, want: &str, have: &FieldVal) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match have {
        FieldVal::Text(h) => {
            if cmp == Cmp::Eq {
                if want == "*" {
                    return !h.is_empty();
                }
                return match want.strip_suffix('*') {
                    Some(prefix) => h.to_lowercase().starts_with(&prefix.to_lowercase()),
                    None => h.eq_ignore_ascii_case(want),
                };
            }
            Some(h.as_str().cmp(want))
        }
        FieldVal::Num(h) => want.parse::<f64>().ok().and_then(|w| h.partial_cmp(&w)),
        FieldVal::Time(h) => parse_time(want).map(|w| h.cmp(&w)),
    };
    match (ord, cmp) {
        (None, _) => false,
        (Some(o), Cmp::Eq) => o == Ordering::Equal,
        (Some(o), Cmp::Gt) => o == Ordering::Greater,
        (Some(o), Cmp::Ge) => o != Ordering::Less,
        (Some(o), Cmp::Lt) => o == Ordering::Less,
        (Some(o), Cmp::Le) => o != Ordering::Greater,
    }
}

impl Query {
    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }

    /// `get(field)` returns the entity's values for a field (None: the field is unknown, and the
    /// term is ignored as Shopify ignores unknown filters); `get(None)` is the free-text value.
    pub fn matches(&self, get: impl Fn(Option<&str>) -> Option<Vec<FieldVal>>) -> bool {
        self.expr.as_ref().is_none_or(|e| eval(e, &get))
    }
}

fn eval(e: &Expr, get: &impl Fn(Option<&str>) -> Option<Vec<FieldVal>>) -> bool {
    match e {
        Expr::And(all) => all.iter().all(|x| eval(x, get)),
        Expr::Or(any) => any.iter().any(|x| eval(x, get)),
        // An ignored (unknown) filter stays ignored under NOT.
        Expr::Not(x) => match x.as_ref() {
            Expr::Term(t) if get(t.field.as_deref()).is_none() => true,
            other => !eval(other, get),
        },
        Expr::Term(t) => {
            let Some(vals) = get(t.field.as_deref()) else {
                return true;
            };
            if t.field.is_none() {
                // Bare words: substring match on the free text.
                let needle = t.value.to_lowercase();
                vals.iter()
                    .any(|v| matches!(v, FieldVal::Text(h) if h.to_lowercase().contains(&needle)))
            } else {
                vals.iter().any(|v| matches_one(t.cmp, &t.value, v))
            }
        }
    }
}

pub fn text(s: impl Into<String>) -> FieldVal {
    FieldVal::Text(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(field: Option<&str>) -> Option<Vec<FieldVal>> {
        let t = DateTime::parse_from_rfc3339("2025-11-05T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        match field {
            None => Some(vec![text("Acme Rope Toy")]),
            Some("sku") => Some(vec![text("ROPE-S"), text("ROPE-M")]),
            Some("status") => Some(vec![text("ACTIVE")]),
            Some("updated_at") => Some(vec![FieldVal::Time(t)]),
            Some("id") => Some(vec![FieldVal::Num(42.0)]),
            Some("tag") => Some(vec![text("toy")]),
            _ => None,
        }
    }

    #[test]
    fn gateway_queries() {
        let yes = [
            "sku:ROPE-S",
            "sku:rope-m",
            "sku:ROPE*",
            "status:active",
            "updated_at:>'2025-11-01T00:00:00Z' AND status:active",
            "updated_at:>=2025-11-05",
            "id:>=42",
            "rope",
            "-sku:NOPE",
            "sku:NOPE OR status:active",
            "(sku:NOPE OR sku:ROPE-M) AND status:active",
            "status:draft OR (sku:ROPE-S -sku:NOPE)",
            "NOT (sku:NOPE OR status:draft)",
            "tag_not:sale",
            "unknown_field:whatever",
        ];
        for q in yes {
            assert!(parse(q).matches(entity), "{q} should match");
        }
        let no = [
            "sku:NOPE",
            "status:draft",
            "updated_at:>'2025-11-06T00:00:00Z'",
            "id:<42",
            "NOT status:active",
            "sku:ROPE-S AND status:draft",
            "(sku:NOPE OR sku:ROPE-M) AND status:draft",
            "sku:ROPE-S AND (status:draft OR id:<10)",
            "NOT (sku:ROPE-S OR status:draft)",
            "tag_not:toy",
        ];
        for q in no {
            assert!(!parse(q).matches(entity), "{q} should not match");
        }
    }
}
