//! Metadata filters over obs columns, evaluated on Arrow record batches while streaming.
//!
//! The language follows pandas' `DataFrame.query`, which is how single-cell pipelines (scGPT's
//! CELLxGENE pretraining selection among them) write these filters:
//!
//! ```text
//! tissue == "blood" and disease == "normal"
//! cell_type in ["B cell", "T cell"] and not (n_genes < 200)
//! donor_id != 'D1' or is_primary_data == true
//! `column with spaces` is not null
//! ```
//!
//! Comparisons `== != < <= > >=` take a string, number or `true`/`false`; `in [..]`,
//! `not in [..]`, `is null`, `is not null`; combined with `and`/`&`, `or`/`|`, `not`/`~` and
//! parentheses. Missing values (nulls, and NaN in float columns) compare like pandas NaN: every
//! comparison is false except `!=`, and `is null` matches them.
//! Categorical columns are evaluated once per category.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::DataType;

use crate::error::{IoError, Result};

/// A parsed obs filter; see the module documentation for the syntax.
///
/// ```
/// use std::sync::Arc;
/// use scfm_io::ObsFilter;
/// use scfm_core::arrow_array::{RecordBatch, StringArray, Int32Array, ArrayRef};
///
/// let f = ObsFilter::parse(r#"tissue == "blood" and n_genes >= 200"#)?;
/// let batch = RecordBatch::try_from_iter([
///     ("tissue", Arc::new(StringArray::from(vec!["blood", "lung", "blood"])) as ArrayRef),
///     ("n_genes", Arc::new(Int32Array::from(vec![250, 900, 150])) as ArrayRef),
/// ]).unwrap();
/// let keep = f.evaluate(&batch)?;
/// assert_eq!(keep.values().iter().collect::<Vec<_>>(), vec![true, false, false]);
/// assert_eq!(f.columns(), vec!["tissue", "n_genes"]);
/// # Ok::<(), scfm_io::IoError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ObsFilter {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp { column: String, op: Op, value: Lit },
    In { column: String, values: Vec<Lit>, negated: bool },
    IsNull { column: String, negated: bool },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit(Lit),
    Op(Op),
    And,
    Or,
    Not,
    In,
    Is,
    Null,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn lex(s: &str) -> std::result::Result<Vec<Tok>, String> {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = vec![];
    while i < cs.len() {
        let c = cs[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '(' | ')' | '[' | ']' | ',' | '&' | '|' | '~' => {
                out.push(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    ',' => Tok::Comma,
                    '&' => Tok::And,
                    '|' => Tok::Or,
                    _ => Tok::Not,
                });
                i += 1;
                // Accept C-style doubled operators too.
                if (c == '&' || c == '|') && cs.get(i) == Some(&c) {
                    i += 1;
                }
            }
            '=' | '!' | '<' | '>' => {
                let two = cs.get(i + 1) == Some(&'=');
                let op = match (c, two) {
                    ('=', true) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', true) => Op::Le,
                    ('>', true) => Op::Ge,
                    ('<', false) => Op::Lt,
                    ('>', false) => Op::Gt,
                    ('!', false) => {
                        out.push(Tok::Not);
                        i += 1;
                        continue;
                    }
                    _ => return Err(format!("unexpected '=' at {i}: use '=='")),
                };
                out.push(Tok::Op(op));
                i += if two { 2 } else { 1 };
            }
            '"' | '\'' | '`' => {
                let q = c;
                let mut j = i + 1;
                let mut buf = String::new();
                while j < cs.len() && cs[j] != q {
                    if cs[j] == '\\' && j + 1 < cs.len() {
                        j += 1;
                    }
                    buf.push(cs[j]);
                    j += 1;
                }
                if j >= cs.len() {
                    return Err(format!("unterminated {q} quote starting at {i}"));
                }
                out.push(if q == '`' { Tok::Ident(buf) } else { Tok::Lit(Lit::Str(buf)) });
                i = j + 1;
            }
            _ if c.is_ascii_digit()
                || ((c == '-' || c == '.') && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let mut j = i + 1;
                while j < cs.len()
                    && (cs[j].is_ascii_alphanumeric()
                        || matches!(cs[j], '.' | '+' | '-') && matches!(cs[j - 1], 'e' | 'E')
                        || cs[j] == '.')
                {
                    j += 1;
                }
                let text: String = cs[i..j].iter().collect();
                let v = text.parse::<f64>().map_err(|_| format!("bad number {text:?}"))?;
                out.push(Tok::Lit(Lit::Num(v)));
                i = j;
            }
            _ if c.is_alphabetic() || c == '_' => {
                let mut j = i;
                while j < cs.len() && (cs[j].is_alphanumeric() || matches!(cs[j], '_' | '.')) {
                    j += 1;
                }
                let word: String = cs[i..j].iter().collect();
                out.push(match word.as_str() {
                    "and" | "AND" => Tok::And,
                    "or" | "OR" => Tok::Or,
                    "not" | "NOT" => Tok::Not,
                    "in" | "IN" => Tok::In,
                    "is" | "IS" => Tok::Is,
                    "null" | "NULL" | "None" | "NaN" | "nan" => Tok::Null,
                    "true" | "True" | "TRUE" => Tok::Lit(Lit::Bool(true)),
                    "false" | "False" | "FALSE" => Tok::Lit(Lit::Bool(false)),
                    _ => Tok::Ident(word),
                });
                i = j;
            }
            _ => return Err(format!("unexpected character {c:?} at {i}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, t: Tok, what: &str) -> std::result::Result<(), String> {
        match self.bump() {
            Some(x) if x == t => Ok(()),
            other => Err(format!("expected {what}, found {}", show(other.as_ref()))),
        }
    }

    fn or(&mut self) -> std::result::Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.bump();
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> std::result::Result<Expr, String> {
        let mut e = self.not()?;
        while self.peek() == Some(&Tok::And) {
            self.bump();
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> std::result::Result<Expr, String> {
        if self.peek() == Some(&Tok::Not) {
            self.bump();
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> std::result::Result<Expr, String> {
        match self.bump() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Some(Tok::Ident(column)) => match self.bump() {
                Some(Tok::Op(op)) => match self.bump() {
                    Some(Tok::Lit(value)) => Ok(Expr::Cmp { column, op, value }),
                    Some(Tok::Null) => Ok(Expr::IsNull { column, negated: op == Op::Ne }),
                    other => Err(format!("expected a value after the comparison, found {}", show(other.as_ref()))),
                },
                Some(Tok::In) => Ok(Expr::In { column, values: self.list()?, negated: false }),
                Some(Tok::Not) => {
                    self.expect(Tok::In, "'in' after 'not'")?;
                    Ok(Expr::In { column, values: self.list()?, negated: true })
                }
                Some(Tok::Is) => {
                    let negated = self.peek() == Some(&Tok::Not);
                    if negated {
                        self.bump();
                    }
                    self.expect(Tok::Null, "'null'")?;
                    Ok(Expr::IsNull { column, negated })
                }
                other => Err(format!("expected a comparison after {column:?}, found {}", show(other.as_ref()))),
            },
            other => Err(format!("expected a column name or '(', found {}", show(other.as_ref()))),
        }
    }

    fn list(&mut self) -> std::result::Result<Vec<Lit>, String> {
        self.expect(Tok::LBracket, "'['")?;
        let mut out = vec![];
        loop {
            match self.bump() {
                Some(Tok::RBracket) if out.is_empty() => return Ok(out),
                Some(Tok::Lit(l)) => out.push(l),
                other => return Err(format!("expected a value in the list, found {}", show(other.as_ref()))),
            }
            match self.bump() {
                Some(Tok::Comma) => continue,
                Some(Tok::RBracket) => return Ok(out),
                other => return Err(format!("expected ',' or ']', found {}", show(other.as_ref()))),
            }
        }
    }
}

fn show(t: Option<&Tok>) -> String {
    match t {
        None => "the end".into(),
        Some(t) => format!("{t:?}"),
    }
}

/// One value of a column, borrowed.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
}

impl Expr {
    fn columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.columns(out);
                b.columns(out);
            }
            Expr::Not(a) => a.columns(out),
            Expr::Cmp { column, .. } | Expr::In { column, .. } | Expr::IsNull { column, .. } => {
                if !out.contains(&column.as_str()) {
                    out.push(column);
                }
            }
        }
    }
}

impl ObsFilter {
    /// Parses a filter expression.
    ///
    /// # Errors
    /// [`IoError::Filter`] with the position of the problem.
    pub fn parse(text: &str) -> Result<Self> {
        let err = |reason: String| IoError::Filter { expr: text.to_owned(), reason };
        let toks = lex(text).map_err(err)?;
        if toks.is_empty() {
            return Err(err("empty expression".into()));
        }
        let mut p = Parser { toks, pos: 0 };
        let expr = p.or().map_err(err)?;
        if p.pos < p.toks.len() {
            return Err(err(format!("unexpected {} after a complete expression", show(p.peek()))));
        }
        Ok(Self { text: text.to_owned(), expr })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The obs columns the expression refers to, in order of first use.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = vec![];
        self.expr.columns(&mut out);
        out
    }

    /// Evaluates the filter: true for the rows to keep.
    ///
    /// # Errors
    /// [`IoError::Filter`] for a missing column or a value of the wrong kind (comparing a text
    /// column with a number, …).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let err = |reason: String| IoError::Filter { expr: self.text.clone(), reason };
        let v = eval(&self.expr, batch).map_err(err)?;
        Ok(BooleanArray::from(v))
    }
}

type Eval = std::result::Result<Vec<bool>, String>;

fn eval(e: &Expr, batch: &RecordBatch) -> Eval {
    match e {
        Expr::And(a, b) => Ok(eval(a, batch)?.into_iter().zip(eval(b, batch)?).map(|(x, y)| x && y).collect()),
        Expr::Or(a, b) => Ok(eval(a, batch)?.into_iter().zip(eval(b, batch)?).map(|(x, y)| x || y).collect()),
        Expr::Not(a) => Ok(eval(a, batch)?.into_iter().map(|x| !x).collect()),
        Expr::IsNull { column, negated } => {
            // Like pandas' isna(): NaN in a float column is missing too.
            let col = column_of(batch, column)?;
            let nan = leaf(column, &col, false, &|v| Ok(matches!(v, Val::Num(x) if x.is_nan())))?;
            Ok((0..col.len()).map(|i| (col.is_null(i) || nan[i]) != *negated).collect())
        }
        Expr::Cmp { column, op, value } => {
            let col = column_of(batch, column)?;
            leaf(column, &col, *op == Op::Ne, &|v| compare(v, *op, value))
        }
        Expr::In { column, values, negated } => {
            let col = column_of(batch, column)?;
            leaf(column, &col, *negated, &|v| {
                let mut hit = false;
                for l in values {
                    hit |= compare(v, Op::Eq, l)?;
                }
                Ok(hit != *negated)
            })
        }
    }
}

fn column_of(batch: &RecordBatch, name: &str) -> std::result::Result<ArrayRef, String> {
    batch.column_by_name(name).cloned().ok_or_else(|| {
        let names: Vec<_> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        format!("no obs column {name:?} (available: {})", names.join(", "))
    })
}

fn compare(v: Val<'_>, op: Op, lit: &Lit) -> std::result::Result<bool, String> {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (v, lit) {
        (Val::Str(a), Lit::Str(b)) => Some(a.cmp(b.as_str())),
        (Val::Num(a), Lit::Num(b)) => a.partial_cmp(b),
        (Val::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Val::Num(a), Lit::Bool(b)) => a.partial_cmp(&f64::from(u8::from(*b))),
        (Val::Str(_), _) => return Err(format!("compares a text column with {lit:?}: quote the value")),
        (Val::Num(_), Lit::Str(s)) => return Err(format!("compares a numeric column with the text {s:?}")),
        (Val::Bool(_), _) => return Err(format!("compares a boolean column with {lit:?}: use true or false")),
    };
    Ok(match ord {
        None => op == Op::Ne,
        Some(o) => match op {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        },
    })
}

type Pred<'p> = dyn Fn(Val<'_>) -> std::result::Result<bool, String> + 'p;

/// Applies `pred` to every row; `if_null` for missing values. Dictionaries are evaluated per
/// category.
fn leaf(name: &str, col: &ArrayRef, if_null: bool, pred: &Pred<'_>) -> Eval {
    if let DataType::Dictionary(_, _) = col.data_type() {
        let dict = col
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(|| format!("column {name:?}: unsupported dictionary key type"))?;
        let per_cat = leaf(name, dict.values(), if_null, pred)?;
        return Ok(dict.keys().iter().map(|k| k.map_or(if_null, |k| per_cat[k as usize])).collect());
    }
    let n = col.len();
    let mut out = Vec::with_capacity(n);
    macro_rules! prim {
        ($t:ty) => {{
            let a = col.as_primitive::<$t>();
            for i in 0..n {
                out.push(if a.is_null(i) { if_null } else { pred(Val::Num(a.value(i) as f64))? });
            }
        }};
    }
    match col.data_type() {
        DataType::Utf8 => {
            let a = col.as_string::<i32>();
            for i in 0..n {
                out.push(if a.is_null(i) { if_null } else { pred(Val::Str(a.value(i)))? });
            }
        }
        DataType::LargeUtf8 => {
            let a = col.as_string::<i64>();
            for i in 0..n {
                out.push(if a.is_null(i) { if_null } else { pred(Val::Str(a.value(i)))? });
            }
        }
        DataType::Boolean => {
            let a = col.as_boolean();
            for i in 0..n {
                out.push(if a.is_null(i) { if_null } else { pred(Val::Bool(a.value(i)))? });
            }
        }
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        other => return Err(format!("column {name:?} has type {other}, which filters cannot compare")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow_array::{DictionaryArray, Float64Array, StringArray};

    fn batch() -> RecordBatch {
        let tissue: DictionaryArray<Int32Type> =
            vec![Some("blood"), Some("lung"), None, Some("blood")].into_iter().collect();
        RecordBatch::try_from_iter([
            ("tissue", Arc::new(tissue) as ArrayRef),
            (
                "disease",
                Arc::new(StringArray::from(vec![Some("normal"), Some("normal"), Some("normal"), Some("COVID-19")]))
                    as ArrayRef,
            ),
            ("n_genes", Arc::new(Float64Array::from(vec![Some(250.0), None, Some(1e3), Some(90.0)])) as ArrayRef),
        ])
        .unwrap()
    }

    fn run(s: &str) -> Vec<bool> {
        ObsFilter::parse(s).unwrap().evaluate(&batch()).unwrap().values().iter().collect()
    }

    #[test]
    fn evaluates_pandas_like() {
        assert_eq!(run(r#"tissue == "blood" and disease == 'normal'"#), [true, false, false, false]);
        assert_eq!(run(r#"tissue != "blood""#), [false, true, true, false]);
        assert_eq!(run("n_genes >= 100 | tissue in ['lung']"), [true, true, true, false]);
        assert_eq!(run("not n_genes < 100"), [true, true, true, false]);
        assert_eq!(run("tissue is null or n_genes is null"), [false, true, true, false]);
        assert_eq!(run("tissue not in ['blood', 'lung']"), [false, false, true, false]);
        assert_eq!(run("(n_genes > 1e2) && !(tissue == 'lung')"), [true, false, true, false]);
        assert_eq!(run("n_genes == -1.5e-3"), [false; 4]);
    }

    #[test]
    fn reports_errors() {
        let e = |s: &str| ObsFilter::parse(s).and_then(|f| f.evaluate(&batch())).unwrap_err().to_string();
        assert!(e("tissue = 'blood'").contains("use '=='"));
        assert!(e("tissue == 'blood' and").contains("the end"));
        assert!(e("organ == 'x'").contains("no obs column \"organ\""));
        assert!(e("tissue == 3").contains("quote the value"));
        assert!(e("n_genes > 'x'").contains("numeric column"));
        assert!(e("tissue == 'unterminated").contains("unterminated"));
    }
}
