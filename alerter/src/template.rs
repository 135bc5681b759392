//! Templating of alerting-rule labels and annotations, compatible with what Prometheus does with Go's
//! `text/template`: this module owns the lexer, the parser, the evaluator and the function library
//! (Prometheus's humanize family, Go's builtins, `printf` with Go's `fmt` formatting).
//!
//! The text is parsed after the preamble Prometheus prepends (`$labels`, `$externalLabels`,
//! `$externalURL`, `$value`), so positions in error messages match Prometheus's. Query functions
//! (`query`, `first`, …) and any other unknown function are rejected at parse time.
//!
//! Notification templates (subjects and bodies of receivers) use the same language over
//! Alertmanager's data model instead (`.Status`, `.Receiver`, `.Alerts`, `.GroupLabels`, …, with
//! `.Alerts.Firing`, `KV.SortedPairs`/`Names`/`Values`/`Remove`, `time.Time` values), plus
//! Alertmanager's `join`, `safeHtml`, `trimSpace` and `stringSlice`; HTML templates escape what
//! their actions print unless it went through `safeHtml`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::rc::Rc;

/// What Prometheus prepends to every alert label and annotation template.
const PREAMBLE: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// How deeply actions and parentheses may nest; deeper templates are a parse error, not a stack overflow.
const MAX_DEPTH: usize = 100;

/// Go's type string of the data passed to alert templates.
const DATA_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }";

/// Function names known to the parser: Go's builtins and Prometheus's non-query functions.
const FUNCTIONS: &[&str] = &[
    "and",
    "eq",
    "ge",
    "gt",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "index",
    "le",
    "len",
    "lt",
    "match",
    "ne",
    "not",
    "or",
    "print",
    "printf",
    "println",
    "reReplaceAll",
    "stripPort",
    "title",
    "toLower",
    "toUpper",
];

/// Functions only notification templates have (Alertmanager's).
const NOTIFY_FUNCTIONS: &[&str] = &["join", "safeHtml", "stringSlice", "trimSpace"];

/// A template that failed to parse or to execute; the messages follow Prometheus's.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The text is not a valid template, or it uses a function this alerter does not have.
    #[error("error parsing template {name}: template: {name}:{line}: {msg}")]
    Parse { name: String, line: usize, msg: String },
    /// Executing the template failed (wrong types, bad arguments, …).
    #[error("error executing template {name}: template: {name}:{line}:{col}: executing {} at <{context}>: {msg}", go_quote(.name))]
    Exec { name: String, line: usize, col: usize, context: String, msg: String },
}

/// The data an alert template sees: `.Labels`, `.ExternalLabels`, `.ExternalURL` and `.Value`.
pub struct TemplateData<'a> {
    pub labels: Vec<(String, String)>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
}

/// A parsed template, ready to be rendered any number of times.
#[derive(Debug)]
pub struct Template {
    name: String,
    src: String,
    root: Vec<Node>,
    /// An HTML notification template: printed values are escaped.
    html: bool,
}

impl Template {
    /// Parses `text` as Prometheus would (with its preamble); `name` appears in error messages
    /// (Prometheus uses `__alert_<alertname>`).
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        Self::parse_with(name, format!("{PREAMBLE}{text}"), &[], false)
    }

    /// Parses a notification template (no preamble; Alertmanager's functions too). With `html`,
    /// what its actions print is HTML-escaped unless marked with `safeHtml`.
    pub fn parse_notification(name: &str, text: &str, html: bool) -> Result<Template, TemplateError> {
        Self::parse_with(name, text.to_string(), NOTIFY_FUNCTIONS, html)
    }

    fn parse_with(name: &str, src: String, extra: &'static [&'static str], html: bool) -> Result<Template, TemplateError> {
        let mut parser = Parser::new(&src);
        parser.extra_funcs = extra;
        let root = parser.parse_root().map_err(|e| {
            let line = 1 + src[..e.pos.min(src.len())].matches('\n').count();
            TemplateError::Parse { name: name.to_string(), line, msg: e.msg }
        })?;
        Ok(Template { name: name.to_string(), src, root, html })
    }

    /// Renders a notification template over `n` in Alertmanager's data model.
    pub fn render_notification(&self, n: &crate::notify::message::Notification) -> Result<String, TemplateError> {
        let root = notification_value(n);
        let mut st = State { vars: vec![("$".to_string(), root.clone())], out: String::new(), html: self.html };
        st.walk(&root, &self.root).map_err(|e| self.exec_error(e))?;
        Ok(st.out)
    }

    /// Renders the template over `data`.
    pub fn render(&self, data: &TemplateData) -> Result<String, TemplateError> {
        let labels: BTreeMap<String, String> = data.labels.iter().cloned().collect();
        let root = Rc::new(Data {
            labels: Rc::new(labels),
            external_labels: Rc::new(data.external_labels.clone()),
            external_url: data.external_url.to_string(),
            value: data.value,
        });
        let mut st = State { vars: vec![("$".to_string(), Value::Data(root.clone()))], out: String::new(), html: false };
        st.walk(&Value::Data(root), &self.root).map_err(|e| self.exec_error(e))?;
        Ok(st.out)
    }

    fn exec_error(&self, e: ExecErr) -> TemplateError {
        let before = &self.src[..e.pos.min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = before.rfind('\n').map_or(e.pos, |nl| e.pos - nl - 1);
        TemplateError::Exec { name: self.name.clone(), line, col, context: e.context, msg: e.msg }
    }
}

/// Renders `t`, or on error returns what Prometheus puts in the label or annotation instead:
/// `<error expanding template: ...>`.
pub fn render_or_error(t: &Template, data: &TemplateData) -> String {
    t.render(data).unwrap_or_else(|e| format!("<error expanding template: {e}>"))
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Ident(String),
    Keyword(&'static str),
    Field(String),
    Variable(String),
    Dot,
    Str(String),
    RawStr(String),
    CharConst(String),
    Number(String),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Char(char),
    Error(String),
    Eof,
}

#[derive(Clone, Debug)]
struct Item {
    tok: Tok,
    pos: usize,
}

const KEYWORDS: &[&str] = &["block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"];

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

/// Go's `%#U` of a character.
fn char_u(c: char) -> String {
    format!("U+{:04X} '{c}'", c as u32)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    start: usize,
    parens: usize,
    items: Vec<Item>,
}

/// Splits a whole template into items; the last one is `Eof` or `Error`.
fn lex(src: &str) -> Vec<Item> {
    let mut l = Lexer { src, pos: 0, start: 0, parens: 0, items: Vec::new() };
    while l.lex_text() {}
    l.items
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn emit(&mut self, tok: Tok) {
        self.items.push(Item { tok, pos: self.start });
        self.start = self.pos;
    }

    fn error(&mut self, msg: String) -> bool {
        self.items.push(Item { tok: Tok::Error(msg), pos: self.start });
        false
    }

    /// Lexes text up to the next action; false when done.
    fn lex_text(&mut self) -> bool {
        let Some(i) = self.rest().find("{{") else {
            if self.pos < self.src.len() {
                self.emit_text(self.src.len());
            }
            self.start = self.pos;
            self.emit(Tok::Eof);
            return false;
        };
        let trim = has_left_trim(&self.rest()[i + 2..]);
        let end = if trim { self.pos + self.rest()[..i].trim_end_matches(is_space).len() } else { self.pos + i };
        self.emit_text(end);
        self.pos += i;
        self.start = self.pos;
        self.lex_left_delim(trim)
    }

    fn emit_text(&mut self, end: usize) {
        if end > self.start {
            let text = self.src[self.start..end].to_string();
            self.items.push(Item { tok: Tok::Text(text), pos: self.start });
        }
    }

    fn lex_left_delim(&mut self, trim: bool) -> bool {
        self.pos += 2;
        let after = if trim { 2 } else { 0 };
        if self.rest()[after..].starts_with("/*") {
            self.pos += after;
            self.start = self.pos;
            return self.lex_comment();
        }
        self.emit(Tok::LeftDelim);
        self.pos += after;
        self.start = self.pos;
        self.parens = 0;
        self.lex_inside_action()
    }

    fn lex_comment(&mut self) -> bool {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else { return self.error("unclosed comment".into()) };
        self.pos += x + 2;
        let Some(trim) = self.at_right_delim() else { return self.error("comment ends before closing delimiter".into()) };
        self.pos += if trim { 4 } else { 2 };
        if trim {
            self.pos += self.rest().len() - self.rest().trim_start_matches(is_space).len();
        }
        self.start = self.pos;
        true
    }

    /// Some(trim) when at `}}` or ` -}}`.
    fn at_right_delim(&self) -> Option<bool> {
        let r = self.rest();
        if has_right_trim(r) && r[2..].starts_with("}}") {
            Some(true)
        } else if r.starts_with("}}") {
            Some(false)
        } else {
            None
        }
    }

    fn lex_right_delim(&mut self, trim: bool) -> bool {
        if trim {
            self.pos += 2;
            self.start = self.pos;
        }
        self.pos += 2;
        self.emit(Tok::RightDelim);
        if trim {
            self.pos += self.rest().len() - self.rest().trim_start_matches(is_space).len();
            self.start = self.pos;
        }
        true
    }

    fn lex_inside_action(&mut self) -> bool {
        loop {
            if let Some(trim) = self.at_right_delim() {
                if self.parens == 0 {
                    return self.lex_right_delim(trim);
                }
                return self.error("unclosed left paren".into());
            }
            let Some(c) = self.next() else { return self.error("unclosed action".into()) };
            if !self.lex_action_char(c) {
                return false;
            }
        }
    }

    fn lex_action_char(&mut self, c: char) -> bool {
        match c {
            c if is_space(c) => self.lex_space(),
            '=' => self.emit(Tok::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".into());
                }
                self.emit(Tok::Declare)
            }
            '|' => self.emit(Tok::Pipe),
            '"' => return self.lex_quote('"', "unterminated quoted string"),
            '\'' => return self.lex_quote('\'', "unterminated character constant"),
            '`' => return self.lex_raw_quote(),
            '$' => return self.lex_field_or_variable(true),
            '.' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => return self.lex_field_or_variable(false),
            '.' | '+' | '-' | '0'..='9' => return self.lex_number(),
            c if is_alnum(c) => return self.lex_identifier(),
            '(' => {
                self.parens += 1;
                self.emit(Tok::LParen)
            }
            ')' => {
                self.parens = self.parens.saturating_sub(1);
                self.emit(Tok::RParen)
            }
            c if c.is_ascii() && !c.is_ascii_control() => self.emit(Tok::Char(c)),
            c => return self.error(format!("unrecognized character in action: {}", char_u(c))),
        }
        true
    }

    fn lex_space(&mut self) {
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            if has_right_trim(&self.src[self.pos - 1..]) && self.src[self.pos + 1..].starts_with("}}") {
                break;
            }
            self.pos += 1;
        }
        if has_right_trim(&self.src[self.pos - 1..]) && self.src[self.pos + 1..].starts_with("}}") {
            self.pos -= 1;
        }
        if self.pos > self.start {
            self.emit(Tok::Space);
        }
    }

    fn lex_quote(&mut self, quote: char, unterminated: &str) -> bool {
        loop {
            match self.next() {
                Some('\\') if !matches!(self.next(), None | Some('\n')) => {}
                None | Some('\n') | Some('\\') => return self.error(unterminated.into()),
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        let text = self.src[self.start..self.pos].to_string();
        self.emit(if quote == '"' { Tok::Str(text) } else { Tok::CharConst(text) });
        true
    }

    fn lex_raw_quote(&mut self) -> bool {
        let Some(x) = self.rest().find('`') else { return self.error("unterminated raw quoted string".into()) };
        self.pos += x + 1;
        let text = self.src[self.start..self.pos].to_string();
        self.emit(Tok::RawStr(text));
        true
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) => is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(') || self.rest().starts_with("}}"),
        }
    }

    fn lex_field_or_variable(&mut self, variable: bool) -> bool {
        if self.at_terminator() {
            self.emit(if variable { Tok::Variable("$".into()) } else { Tok::Dot });
            return true;
        }
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            return self.error(format!("bad character {}", char_u(c)));
        }
        let word = self.src[self.start..self.pos].to_string();
        self.emit(if variable { Tok::Variable(word) } else { Tok::Field(word[1..].to_string()) });
        true
    }

    fn lex_identifier(&mut self) -> bool {
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            return self.error(format!("bad character {}", char_u(c)));
        }
        let word = &self.src[self.start..self.pos];
        let tok = match word {
            "true" | "false" => Tok::Bool(word == "true"),
            "nil" => Tok::Nil,
            w => match KEYWORDS.iter().find(|k| **k == w) {
                Some(k) => Tok::Keyword(k),
                None => Tok::Ident(w.to_string()),
            },
        };
        self.emit(tok);
        true
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn lex_number(&mut self) -> bool {
        self.pos = self.start;
        let mut ok = self.scan_number();
        if ok && matches!(self.peek(), Some('+' | '-')) {
            // A complex number (1+2i); the parser rejects those.
            ok = self.scan_number() && self.src[..self.pos].ends_with('i');
        }
        if !ok {
            let text = self.src[self.start..self.pos].to_string();
            return self.error(format!("bad number syntax: {}", go_quote(&text)));
        }
        let text = self.src[self.start..self.pos].to_string();
        self.emit(Tok::Number(text));
        true
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return false;
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax tree
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Control>),
    With(Box<Control>),
    Range(Box<Control>),
    Break,
    Continue,
}

#[derive(Debug)]
struct Control {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
struct Pipe {
    pos: usize,
    decl: Vec<String>,
    is_assign: bool,
    cmds: Vec<Command>,
}

#[derive(Debug)]
struct Command {
    args: Vec<Operand>,
}

#[derive(Debug)]
struct Operand {
    pos: usize,
    term: Term,
}

#[derive(Debug)]
enum Term {
    Func(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Chain(Box<Operand>, Vec<String>),
    Dot,
    Nil,
    Bool(bool),
    Str { text: String, value: String },
    Int { text: String, value: i64 },
    Float { text: String, value: f64 },
    Pipe(Box<Pipe>),
}

impl Term {
    /// A literal that cannot start a later pipeline stage, nor be followed by a field.
    fn is_literal(&self) -> bool {
        matches!(self, Term::Dot | Term::Nil | Term::Bool(_) | Term::Str { .. } | Term::Int { .. } | Term::Float { .. })
    }
}

fn write_fields(f: &mut fmt::Formatter, fields: &[String]) -> fmt::Result {
    fields.iter().try_for_each(|x| write!(f, ".{x}"))
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Term::Func(n) => f.write_str(n),
            Term::Field(fields) => write_fields(f, fields),
            Term::Var(n, fields) => {
                f.write_str(n)?;
                write_fields(f, fields)
            }
            Term::Chain(op, fields) => {
                match &op.term {
                    Term::Pipe(p) => write!(f, "({p})")?,
                    t => write!(f, "{t}")?,
                }
                write_fields(f, fields)
            }
            Term::Dot => f.write_str("."),
            Term::Nil => f.write_str("nil"),
            Term::Bool(b) => write!(f, "{b}"),
            Term::Str { text, .. } | Term::Int { text, .. } | Term::Float { text, .. } => f.write_str(text),
            Term::Pipe(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match &a.term {
                Term::Pipe(p) => write!(f, "({p})")?,
                t => write!(f, "{t}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(f, "{} {} ", self.decl.join(", "), if self.is_assign { "=" } else { ":=" })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

fn write_list(f: &mut fmt::Formatter, list: &[Node]) -> fmt::Result {
    list.iter().try_for_each(|n| write!(f, "{n}"))
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (kw, c) = match self {
            Node::Text(t) => return f.write_str(t),
            Node::Action(p) => return write!(f, "{{{{{p}}}}}"),
            Node::Break => return f.write_str("{{break}}"),
            Node::Continue => return f.write_str("{{continue}}"),
            Node::If(c) => ("if", c),
            Node::With(c) => ("with", c),
            Node::Range(c) => ("range", c),
        };
        write!(f, "{{{{{kw} {}}}}}", c.pipe)?;
        write_list(f, &c.list)?;
        if let Some(e) = &c.else_list {
            f.write_str("{{else}}")?;
            write_list(f, e)?;
        }
        f.write_str("{{end}}")
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

struct ParseErr {
    pos: usize,
    msg: String,
}

type PResult<T> = Result<T, ParseErr>;

/// What ended an item list.
enum ListEnd {
    End,
    Else,
}

struct Parser {
    items: Vec<Item>,
    i: usize,
    last_pos: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    /// Functions allowed besides `FUNCTIONS`.
    extra_funcs: &'static [&'static str],
}

/// Go's description of an item in "unexpected ..." messages.
fn describe(t: &Tok) -> String {
    match t {
        Tok::Error(m) => m.clone(),
        Tok::Eof => "EOF".into(),
        Tok::Keyword(k) => format!("<{k}>"),
        Tok::LeftDelim | Tok::RightDelim | Tok::Space | Tok::Pipe | Tok::LParen | Tok::RParen => format!("{:?}", tok_text(t)),
        _ => {
            let s = tok_text(t);
            if s.chars().count() > 10 {
                format!("{}...", go_quote(&s.chars().take(10).collect::<String>()))
            } else {
                go_quote(&s)
            }
        }
    }
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Text(s) | Tok::Ident(s) | Tok::Str(s) | Tok::RawStr(s) | Tok::CharConst(s) | Tok::Number(s) | Tok::Variable(s) => s.clone(),
        Tok::Field(s) => format!(".{s}"),
        Tok::Keyword(k) => (*k).into(),
        Tok::LeftDelim => "{{".into(),
        Tok::RightDelim => "}}".into(),
        Tok::Space => " ".into(),
        Tok::Dot => ".".into(),
        Tok::Bool(b) => b.to_string(),
        Tok::Nil => "nil".into(),
        Tok::Pipe => "|".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::Declare => ":=".into(),
        Tok::Assign => "=".into(),
        Tok::Char(c) => c.to_string(),
        Tok::Error(m) => m.clone(),
        Tok::Eof => String::new(),
    }
}

impl Parser {
    fn new(src: &str) -> Parser {
        Parser { items: lex(src), i: 0, last_pos: 0, vars: vec!["$".into()], range_depth: 0, depth: 0, extra_funcs: &[] }
    }

    fn err<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err(ParseErr { pos: self.last_pos, msg: msg.into() })
    }

    fn peek(&self) -> &Item {
        let last = self.items.len().saturating_sub(1);
        &self.items[self.i.min(last)]
    }

    fn next(&mut self) -> Item {
        let it = self.peek().clone();
        self.last_pos = it.pos;
        if self.i < self.items.len() {
            self.i += 1;
        }
        it
    }

    fn skip_space(&mut self) {
        while self.peek().tok == Tok::Space {
            self.i += 1;
        }
    }

    fn peek_non_space(&mut self) -> &Item {
        self.skip_space();
        self.peek()
    }

    fn next_non_space(&mut self) -> Item {
        self.skip_space();
        self.next()
    }

    fn unexpected<T>(&self, it: &Item, context: &str) -> PResult<T> {
        if let Tok::Error(m) = &it.tok {
            return Err(ParseErr { pos: it.pos, msg: m.clone() });
        }
        Err(ParseErr { pos: it.pos, msg: format!("unexpected {} in {context}", describe(&it.tok)) })
    }

    fn parse_root(mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => root.push(n),
                Parsed::End => return self.err("unexpected {{end}}"),
                Parsed::Else => return self.err("unexpected {{else}}"),
            }
        }
        Ok(root)
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, ListEnd)> {
        let mut list = Vec::new();
        while self.peek_non_space().tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                Parsed::End => return Ok((list, ListEnd::End)),
                Parsed::Else => return Ok((list, ListEnd::Else)),
            }
        }
        let it = self.peek().clone();
        if let Tok::Error(_) = it.tok {
            return self.unexpected(&it, "input");
        }
        self.err("unexpected EOF")
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let it = self.next_non_space();
        match it.tok {
            Tok::Text(t) => Ok(Parsed::Node(Node::Text(t))),
            Tok::LeftDelim => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return self.err("template nested too deeply");
                }
                let r = self.action();
                self.depth -= 1;
                r
            }
            _ => self.unexpected(&it, "input"),
        }
    }

    fn action(&mut self) -> PResult<Parsed> {
        let it = self.next_non_space();
        match &it.tok {
            Tok::Keyword("if") => self.control("if").map(|c| Parsed::Node(Node::If(Box::new(c)))),
            Tok::Keyword("with") => self.control("with").map(|c| Parsed::Node(Node::With(Box::new(c)))),
            Tok::Keyword("range") => self.control("range").map(|c| Parsed::Node(Node::Range(Box::new(c)))),
            Tok::Keyword("end") => self.expect_right_delim("end").map(|_| Parsed::End),
            Tok::Keyword("else") => self.else_control(),
            Tok::Keyword(k @ ("break" | "continue")) => self.break_control(k),
            Tok::Keyword(k) => self.err(format!("{{{{{k}}}}} is not supported in alert templates")),
            _ => {
                self.i -= 1;
                Ok(Parsed::Node(Node::Action(self.pipeline("command", &Tok::RightDelim)?)))
            }
        }
    }

    fn expect_right_delim(&mut self, context: &str) -> PResult<()> {
        let it = self.next_non_space();
        if it.tok != Tok::RightDelim {
            return self.unexpected(&it, context);
        }
        Ok(())
    }

    fn break_control(&mut self, kw: &str) -> PResult<Parsed> {
        self.expect_right_delim(&format!("{{{{{kw}}}}}"))?;
        if self.range_depth == 0 {
            return self.err(format!("{{{{{kw}}}}} outside {{{{range}}}}"));
        }
        Ok(Parsed::Node(if kw == "break" { Node::Break } else { Node::Continue }))
    }

    fn else_control(&mut self) -> PResult<Parsed> {
        let peek = self.peek_non_space().clone();
        if peek.tok == Tok::Keyword("if") {
            return Ok(Parsed::Else);
        }
        self.expect_right_delim("else")?;
        Ok(Parsed::Else)
    }

    fn control(&mut self, context: &str) -> PResult<Control> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("template nested too deeply");
        }
        let nvars = self.vars.len();
        let r = self.control_body(context);
        self.vars.truncate(nvars);
        self.depth -= 1;
        r
    }

    fn control_body(&mut self, context: &str) -> PResult<Control> {
        let pipe = self.pipeline(context, &Tok::RightDelim)?;
        let in_range = usize::from(context == "range");
        self.range_depth += in_range;
        let (list, end) = self.item_list()?;
        self.range_depth -= in_range;
        let else_list = match end {
            ListEnd::End => None,
            ListEnd::Else if context == "if" && self.peek_non_space().tok == Tok::Keyword("if") => {
                self.next_non_space();
                Some(vec![Node::If(Box::new(self.control("if")?))])
            }
            ListEnd::Else => match self.item_list()? {
                (l, ListEnd::End) => Some(l),
                (_, ListEnd::Else) => return self.err("expected end; found {{else}}"),
            },
        };
        Ok(Control { pipe, list, else_list })
    }

    fn pipeline(&mut self, context: &str, end: &Tok) -> PResult<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe { pos, decl: Vec::new(), is_assign: false, cmds: Vec::new() };
        self.declarations(&mut pipe, context)?;
        loop {
            let it = self.next_non_space();
            match &it.tok {
                t if t == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                Tok::Bool(_)
                | Tok::CharConst(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::RawStr(_)
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LParen => {
                    self.i -= 1;
                    pipe.cmds.push(self.command()?);
                }
                _ => return self.unexpected(&it, context),
            }
        }
    }

    fn declarations(&mut self, pipe: &mut Pipe, context: &str) -> PResult<()> {
        loop {
            let Tok::Variable(v) = self.peek_non_space().tok.clone() else { return Ok(()) };
            let save = self.i;
            let var_pos = self.next().pos;
            let next = self.peek_non_space().tok.clone();
            match next {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = next == Tok::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.clone());
                    self.vars.push(v);
                    return Ok(());
                }
                Tok::Char(',') => {
                    self.next_non_space();
                    pipe.decl.push(v.clone());
                    self.vars.push(v);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().tok {
                            Tok::Variable(_) | Tok::RightDelim | Tok::RParen => continue,
                            _ => return self.err("range can only initialize variables"),
                        }
                    }
                    self.last_pos = var_pos;
                    return self.err(format!("too many declarations in {context}"));
                }
                _ => {
                    self.i = save;
                    return Ok(());
                }
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.err(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if c.args.first().is_some_and(|a| a.term.is_literal()) {
                return self.err(format!("non executable command in pipeline stage {}", i + 1));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let mut cmd = Command { args: Vec::new() };
        loop {
            self.skip_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let it = self.next();
            match it.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RParen => self.i -= 1,
                Tok::Pipe => {}
                _ => return self.unexpected(&it, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.err("empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Operand>> {
        let Some(op) = self.term()? else { return Ok(None) };
        let mut fields = Vec::new();
        let pos = self.peek().pos;
        while let Tok::Field(f) = &self.peek().tok {
            fields.push(f.clone());
            self.next();
        }
        if fields.is_empty() {
            return Ok(Some(op));
        }
        let term = match op.term {
            Term::Field(mut f) => {
                f.extend(fields);
                Term::Field(f)
            }
            Term::Var(n, mut f) => {
                f.extend(fields);
                Term::Var(n, f)
            }
            t if t.is_literal() => return self.err(format!("unexpected . after term {}", go_quote(&t.to_string()))),
            t => Term::Chain(Box::new(Operand { pos: op.pos, term: t }), fields),
        };
        Ok(Some(Operand { pos, term }))
    }

    fn term(&mut self) -> PResult<Option<Operand>> {
        let it = self.next_non_space();
        let term = match it.tok {
            Tok::Ident(name) => {
                if !FUNCTIONS.contains(&name.as_str()) && !self.extra_funcs.contains(&name.as_str()) {
                    return self.err(format!("function {} not defined", go_quote(&name)));
                }
                Term::Func(name)
            }
            Tok::Dot => Term::Dot,
            Tok::Nil => Term::Nil,
            Tok::Variable(v) => self.use_var(&v)?,
            Tok::Field(f) => Term::Field(vec![f]),
            Tok::Bool(b) => Term::Bool(b),
            Tok::CharConst(text) => self.char_const(text)?,
            Tok::Number(text) => self.number(text)?,
            Tok::LParen => return self.paren_pipeline(it.pos).map(Some),
            Tok::Str(text) | Tok::RawStr(text) => match go_unquote(&text) {
                Some(value) => Term::Str { text, value },
                None => return self.err("invalid syntax"),
            },
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        };
        Ok(Some(Operand { pos: it.pos, term }))
    }

    fn paren_pipeline(&mut self, pos: usize) -> PResult<Operand> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("template nested too deeply");
        }
        let pipe = self.pipeline("parenthesized pipeline", &Tok::RParen);
        self.depth -= 1;
        let pipe = pipe?;
        Ok(Operand { pos: pipe.pos.max(pos), term: Term::Pipe(Box::new(pipe)) })
    }

    fn use_var(&self, v: &str) -> PResult<Term> {
        let (name, fields) = match v.find('.') {
            Some(i) => (&v[..i], v[i + 1..].split('.').map(String::from).collect()),
            None => (v, Vec::new()),
        };
        if !self.vars.iter().any(|x| x == name) {
            return self.err(format!("undefined variable {}", go_quote(name)));
        }
        Ok(Term::Var(name.to_string(), fields))
    }

    fn char_const(&self, text: String) -> PResult<Term> {
        match go_unquote(&text).map(|s| s.chars().collect::<Vec<_>>()) {
            Some(c) if c.len() == 1 => Ok(Term::Int { text, value: i64::from(u32::from(c[0])) }),
            _ => self.err(format!("malformed character constant: {text}")),
        }
    }

    fn number(&self, text: String) -> PResult<Term> {
        let clean = text.replace('_', "");
        let lower = clean.to_ascii_lowercase();
        let (neg, digits) = match lower.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
        };
        let radix = [("0x", 16), ("0o", 8), ("0b", 2)].iter().find(|(p, _)| digits.starts_with(p));
        let int = match radix {
            Some((p, r)) => i64::from_str_radix(&digits[p.len()..], *r).ok(),
            None if !digits.contains(['.', 'e', 'p', 'i']) => digits.parse::<i64>().ok(),
            None => None,
        };
        if let Some(v) = int {
            return Ok(Term::Int { text, value: if neg { -v } else { v } });
        }
        if radix.is_none() && !digits.contains(['i', 'p']) {
            if let Ok(v) = clean.parse::<f64>() {
                if !digits.contains(['.', 'e']) {
                    return self.err(format!("integer overflow: {}", go_quote(&text)));
                }
                return Ok(Term::Float { text, value: v });
            }
        }
        self.err(format!("illegal number syntax: {}", go_quote(&text)))
    }
}

enum Parsed {
    Node(Node),
    End,
    Else,
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Data {
    labels: Rc<BTreeMap<String, String>>,
    external_labels: Rc<BTreeMap<String, String>>,
    external_url: String,
    value: f64,
}

#[derive(Clone, Debug)]
enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Map(Rc<BTreeMap<String, String>>),
    Data(Rc<Data>),
    /// Alertmanager's `template.KV`: a label set with methods.
    KV(Rc<BTreeMap<String, String>>),
    /// A slice: `[]string`, `template.Pairs` or `template.Alerts`.
    List(Rc<Vec<Value>>, ListType),
    /// A struct of Alertmanager's data model.
    Obj(Rc<Obj>),
    /// A `time.Time`, milliseconds since the epoch (`None` is Go's zero time).
    Time(Option<i64>),
    /// `template.HTML`, from `safeHtml`: printed as is by HTML templates.
    Html(String),
}

impl Value {
    /// Go's type name of the value.
    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Map(_) => "map[string]string",
            Value::Data(_) => DATA_TYPE,
            Value::KV(_) => "template.KV",
            Value::List(_, t) => t.name(),
            Value::Obj(o) => o.ty.name(),
            Value::Time(_) => "time.Time",
            Value::Html(_) => "template.HTML",
        }
    }

    /// Go's truth: false, 0, "", empty maps and nil are false.
    fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Data(_) | Value::Obj(_) | Value::Time(_) => true,
            Value::KV(m) => !m.is_empty(),
            Value::List(l, _) => !l.is_empty(),
            Value::Html(s) => !s.is_empty(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// An execution error at a node: its position in the source and Go's rendering of it.
struct ExecErr {
    pos: usize,
    context: String,
    msg: String,
}

type EResult<T> = Result<T, ExecErr>;

fn exec_err<T>(pos: usize, context: impl fmt::Display, msg: impl Into<String>) -> EResult<T> {
    Err(ExecErr { pos, context: context.to_string(), msg: msg.into() })
}

/// How a list of nodes finished.
#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// The type an argument is converted to.
#[derive(Clone, Copy, PartialEq)]
enum Param {
    Any,
    Str,
}

/// A function's signature: fixed parameters and the variadic one's type.
struct Signature {
    fixed: &'static [Param],
    variadic: Option<Param>,
}

fn signature(name: &str) -> Signature {
    use Param::{Any, Str};
    let (fixed, variadic): (&'static [Param], _) = match name {
        "and" | "or" | "eq" | "index" => (&[Any], Some(Any)),
        "ne" | "lt" | "le" | "gt" | "ge" => (&[Any, Any], None),
        "print" | "println" => (&[], Some(Any)),
        "printf" => (&[Str], Some(Any)),
        "reReplaceAll" => (&[Str, Str, Str], None),
        "match" => (&[Str, Str], None),
        "title" | "toLower" | "toUpper" | "stripPort" | "trimSpace" | "safeHtml" => (&[Str], None),
        "join" => (&[Str, Any], None),
        "stringSlice" => (&[], Some(Str)),
        _ => (&[Any], None),
    };
    Signature { fixed, variadic }
}

struct State {
    vars: Vec<(String, Value)>,
    out: String,
    /// HTML-escape printed values (HTML notification templates).
    html: bool,
}

impl State {
    fn walk(&mut self, dot: &Value, list: &[Node]) -> EResult<Flow> {
        for node in list {
            let flow = match node {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        match &v {
                            Value::Html(h) if self.html => self.out.push_str(h),
                            v if self.html => self.out.push_str(&escape_html(&sprint_printed(v))),
                            v => print_value(&mut self.out, v),
                        }
                    }
                    Flow::Normal
                }
                Node::If(c) => self.walk_if_with(dot, c, false)?,
                Node::With(c) => self.walk_if_with(dot, c, true)?,
                Node::Range(c) => self.walk_range(dot, c, node)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(&mut self, dot: &Value, c: &Control, with: bool) -> EResult<Flow> {
        let mark = self.vars.len();
        let r = self.if_with_body(dot, c, with);
        self.vars.truncate(mark);
        r
    }

    fn if_with_body(&mut self, dot: &Value, c: &Control, with: bool) -> EResult<Flow> {
        let v = self.eval_pipeline(dot, &c.pipe)?;
        if v.truth() {
            let inner = if with { v } else { dot.clone() };
            return self.walk(&inner, &c.list);
        }
        match &c.else_list {
            Some(e) => self.walk(dot, e),
            None => Ok(Flow::Normal),
        }
    }

    fn walk_range(&mut self, dot: &Value, c: &Control, node: &Node) -> EResult<Flow> {
        let mark = self.vars.len();
        let r = self.range_body(dot, c, node);
        self.vars.truncate(mark);
        r
    }

    fn range_body(&mut self, dot: &Value, c: &Control, node: &Node) -> EResult<Flow> {
        let v = self.eval_pipeline(dot, &c.pipe)?;
        if let Value::List(items, _) = &v {
            return self.range_list(dot, c, items);
        }
        let map = match v {
            Value::Map(m) | Value::KV(m) => m,
            Value::Nil => Rc::new(BTreeMap::new()),
            other => {
                let msg = format!("range can't iterate over {}", sprint(&other));
                return match c.pipe.cmds.last().and_then(|cmd| cmd.args.last()) {
                    Some(op) => exec_err(op.pos, &op.term, msg),
                    None => exec_err(c.pipe.pos, node, msg),
                };
            }
        };
        let mark = self.vars.len();
        for (k, val) in map.iter() {
            let elem = Value::Str(val.clone());
            self.set_top_var(mark, 1, &c.pipe, elem.clone());
            self.set_top_var(mark, 2, &c.pipe, Value::Str(k.clone()));
            let flow = self.walk(&elem, &c.list);
            self.vars.truncate(mark);
            if flow? == Flow::Break {
                break;
            }
        }
        if map.is_empty() {
            if let Some(e) = &c.else_list {
                return self.walk(dot, e);
            }
        }
        Ok(Flow::Normal)
    }

    fn range_list(&mut self, dot: &Value, c: &Control, items: &[Value]) -> EResult<Flow> {
        let mark = self.vars.len();
        for (i, elem) in items.iter().enumerate() {
            self.set_top_var(mark, 1, &c.pipe, elem.clone());
            self.set_top_var(mark, 2, &c.pipe, Value::Int(i as i64));
            let flow = self.walk(elem, &c.list);
            self.vars.truncate(mark);
            if flow? == Flow::Break {
                break;
            }
        }
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                return self.walk(dot, e);
            }
        }
        Ok(Flow::Normal)
    }

    /// Sets the n-th variable from the top of the range's declarations (1 = element, 2 = key).
    fn set_top_var(&mut self, mark: usize, n: usize, pipe: &Pipe, v: Value) {
        if pipe.decl.len() >= n && mark >= n {
            self.vars[mark - n].1 = v;
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> EResult<Value> {
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone(), pipe)?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn set_var(&mut self, name: &str, v: Value, pipe: &Pipe) -> EResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => exec_err(pipe.pos, pipe, format!("undefined variable: {name}")),
        }
    }

    fn var_value(&self, name: &str, op: &Operand) -> EResult<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => exec_err(op.pos, &op.term, format!("undefined variable: {name}")),
        }
    }

    fn eval_command(&mut self, dot: &Value, cmd: &Command, fin: Option<Value>) -> EResult<Value> {
        let first = &cmd.args[0];
        let has_args = cmd.args.len() > 1 || fin.is_some();
        match &first.term {
            Term::Func(name) => self.eval_function(dot, name, first, &cmd.args[1..], cmd, fin),
            Term::Field(_) | Term::Var(..) | Term::Chain(..) => {
                if has_args {
                    if let Some(v) = self.method_call(dot, first, &cmd.args[1..], fin.clone())? {
                        return Ok(v);
                    }
                }
                self.eval_reference(dot, first, has_args)
            }
            Term::Pipe(p) => {
                not_a_function(first, has_args)?;
                self.eval_pipeline(dot, p)
            }
            Term::Nil => exec_err(first.pos, &first.term, "nil is not a command"),
            _ => {
                not_a_function(first, has_args)?;
                self.eval_arg(dot, Param::Any, first)
            }
        }
    }

    fn field_chain(&mut self, mut v: Value, fields: &[String], op: &Operand, has_args: bool) -> EResult<Value> {
        for (i, f) in fields.iter().enumerate() {
            v = eval_field(v, f, op, has_args && i + 1 == fields.len())?;
        }
        Ok(v)
    }

    /// Evaluates an argument and converts it to the parameter type, as Go's `evalArg`.
    fn eval_arg(&mut self, dot: &Value, p: Param, op: &Operand) -> EResult<Value> {
        let v = match &op.term {
            Term::Str { value, .. } => return Ok(Value::Str(value.clone())),
            Term::Bool(_) | Term::Int { .. } | Term::Float { .. } if p == Param::Str => {
                return exec_err(op.pos, &op.term, format!("expected string; found {}", op.term))
            }
            Term::Nil if p == Param::Str => return exec_err(op.pos, &op.term, "cannot assign nil to string"),
            Term::Nil => return Ok(Value::Nil),
            Term::Bool(b) => return Ok(Value::Bool(*b)),
            Term::Int { value, .. } => return Ok(Value::Int(*value)),
            Term::Float { value, .. } => return Ok(Value::Float(*value)),
            Term::Dot => dot.clone(),
            Term::Func(name) => self.eval_function(dot, name, op, &[], &op.term, None)?,
            Term::Pipe(pipe) => self.eval_pipeline(dot, pipe)?,
            Term::Field(_) | Term::Var(..) | Term::Chain(..) => self.eval_reference(dot, op, false)?,
        };
        validate(v, p, op)
    }

    /// Evaluates a field, variable or chain (`.a.b`, `$x.a`, `(pipe).a`); `has_args` when it is
    /// a command given arguments, which Go rejects.
    fn eval_reference(&mut self, dot: &Value, op: &Operand, has_args: bool) -> EResult<Value> {
        match &op.term {
            Term::Field(fields) => self.field_chain(dot.clone(), fields, op, has_args),
            Term::Var(name, fields) => {
                let v = self.var_value(name, op)?;
                if fields.is_empty() {
                    not_a_function(op, has_args)?;
                }
                self.field_chain(v, fields, op, has_args)
            }
            Term::Chain(inner, fields) => {
                let v = self.eval_arg(dot, Param::Any, inner)?;
                self.field_chain(v, fields, op, has_args)
            }
            _ => Ok(Value::Nil),
        }
    }

    /// A method with arguments of Alertmanager's types (`KV.Remove`, `time.Time.Format`) at the
    /// end of a field chain; `None` when the chain does not end in one.
    fn method_call(&mut self, dot: &Value, op: &Operand, args: &[Operand], fin: Option<Value>) -> EResult<Option<Value>> {
        let (base, fields) = match &op.term {
            Term::Field(f) => (dot.clone(), f),
            Term::Var(name, f) if !f.is_empty() => (self.var_value(name, op)?, f),
            Term::Chain(inner, f) => (self.eval_arg(dot, Param::Any, inner)?, f),
            _ => return Ok(None),
        };
        let Some((last, init)) = fields.split_last() else { return Ok(None) };
        let receiver = self.field_chain(base, init, op, false)?;
        if !matches!((&receiver, last.as_str()), (Value::KV(_), "Remove") | (Value::Time(_), "Format")) {
            return Ok(None);
        }
        let mut argv = Vec::new();
        for a in args {
            argv.push(self.eval_arg(dot, Param::Any, a)?);
        }
        argv.extend(fin);
        if argv.len() != 1 {
            return exec_err(op.pos, &op.term, format!("wrong number of args for {last}: want 1 got {}", argv.len()));
        }
        let r = match (&receiver, &argv[0]) {
            (Value::KV(m), Value::List(names, ListType::Strings)) => {
                let mut out = (**m).clone();
                for n in names.iter() {
                    if let Value::Str(n) = n {
                        out.remove(n);
                    }
                }
                Value::KV(Rc::new(out))
            }
            (Value::Time(t), Value::Str(layout)) => Value::Str(go_time_format(*t, layout)),
            (_, a) => return exec_err(op.pos, &op.term, format!("wrong type for value in {last}; got {}", a.type_name())),
        };
        Ok(Some(r))
    }

    /// Calls a function; `site` is what Go names in "error calling" errors (the command).
    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        ident: &Operand,
        args: &[Operand],
        site: &dyn fmt::Display,
        fin: Option<Value>,
    ) -> EResult<Value> {
        let sig = signature(name);
        check_arity(name, &sig, args.len(), fin.is_some(), ident)?;
        if name == "and" || name == "or" {
            return self.and_or(dot, name == "or", args, fin);
        }
        let mut argv = Vec::with_capacity(args.len() + 1);
        for (i, a) in args.iter().enumerate() {
            let p = sig.fixed.get(i).copied().or(sig.variadic).unwrap_or(Param::Any);
            argv.push(self.eval_arg(dot, p, a)?);
        }
        if let Some(f) = fin {
            let p = sig.fixed.get(args.len()).copied().or(sig.variadic).unwrap_or(Param::Any);
            argv.push(validate(f, p, args.last().unwrap_or(ident))?);
        }
        call(name, argv).or_else(|msg| exec_err(ident.pos, site, format!("error calling {name}: {msg}")))
    }

    fn and_or(&mut self, dot: &Value, or: bool, args: &[Operand], fin: Option<Value>) -> EResult<Value> {
        let mut v = Value::Nil;
        for a in args {
            v = self.eval_arg(dot, Param::Any, a)?;
            if v.truth() == or {
                return Ok(v);
            }
        }
        Ok(fin.unwrap_or(v))
    }
}

fn not_a_function(op: &Operand, has_args: bool) -> EResult<()> {
    if has_args {
        return exec_err(op.pos, &op.term, format!("can't give argument to non-function {}", op.term));
    }
    Ok(())
}

fn check_arity(name: &str, sig: &Signature, nargs: usize, fin: bool, ident: &Operand) -> EResult<()> {
    let num_in = nargs + usize::from(fin);
    if sig.variadic.is_some() {
        if num_in < sig.fixed.len() {
            let msg = format!("wrong number of args for {name}: want at least {} got {nargs}", sig.fixed.len());
            return exec_err(ident.pos, &ident.term, msg);
        }
    } else if num_in != sig.fixed.len() {
        return exec_err(ident.pos, &ident.term, format!("wrong number of args for {name}: want {} got {num_in}", sig.fixed.len()));
    }
    Ok(())
}

/// Go's `validateType` for values (not literals) passed where a type is expected.
fn validate(v: Value, p: Param, op: &Operand) -> EResult<Value> {
    match (p, &v) {
        (Param::Any, _) | (Param::Str, Value::Str(_)) => Ok(v),
        (Param::Str, Value::Html(h)) => Ok(Value::Str(h.clone())),
        (Param::Str, Value::Nil) => exec_err(op.pos, &op.term, "invalid value; expected string"),
        (Param::Str, _) => exec_err(op.pos, &op.term, format!("wrong type for value; expected string; got {}", v.type_name())),
    }
}

fn eval_field(receiver: Value, name: &str, op: &Operand, has_args: bool) -> EResult<Value> {
    match receiver {
        Value::Map(m) => {
            if has_args {
                return exec_err(op.pos, &op.term, format!("{name} is not a method but has arguments"));
            }
            Ok(Value::Str(m.get(name).cloned().unwrap_or_default()))
        }
        Value::Data(d) => {
            let v = match name {
                "Labels" => Value::Map(d.labels.clone()),
                "ExternalLabels" => Value::Map(d.external_labels.clone()),
                "ExternalURL" => Value::Str(d.external_url.clone()),
                "Value" => Value::Float(d.value),
                _ => return exec_err(op.pos, &op.term, format!("can't evaluate field {name} in type {DATA_TYPE}")),
            };
            if has_args {
                return exec_err(op.pos, &op.term, format!("{name} has arguments but cannot be invoked as function"));
            }
            Ok(v)
        }
        Value::Nil => Ok(Value::Nil),
        v @ (Value::KV(_) | Value::List(..) | Value::Obj(_) | Value::Time(_)) => {
            let ty = v.type_name();
            match notify_field(v, name) {
                Some(_) if has_args => exec_err(op.pos, &op.term, format!("{name} has arguments but cannot be invoked as function")),
                Some(r) => Ok(r),
                None => exec_err(op.pos, &op.term, format!("can't evaluate field {name} in type {ty}")),
            }
        }
        other => exec_err(op.pos, &op.term, format!("can't evaluate field {name} in type {}", other.type_name())),
    }
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

type FResult = Result<Value, String>;

fn call(name: &str, a: Vec<Value>) -> FResult {
    let s = |i: usize| match a.get(i) {
        Some(Value::Str(s)) => s.as_str(),
        _ => "",
    };
    match name {
        "humanize" => to_float(&a[0]).map(|v| Value::Str(humanize(v))),
        "humanize1024" => to_float(&a[0]).map(|v| Value::Str(humanize1024(v))),
        "humanizeDuration" => to_float(&a[0]).map(|v| Value::Str(humanize_duration(v))),
        "humanizePercentage" => to_float(&a[0]).map(|v| Value::Str(format!("{}%", fmt_g(v * 100.0, Some(4))))),
        "humanizeTimestamp" => humanize_timestamp(to_float(&a[0])?).map(Value::Str),
        "printf" => Ok(Value::Str(sprintf(s(0), &a[1..]))),
        "print" => Ok(Value::Str(sprint_args(&a, false))),
        "println" => Ok(Value::Str(sprint_args(&a, true))),
        "eq" => eq(&a[0], &a[1..]).map(Value::Bool),
        "ne" => eq(&a[0], &a[1..]).map(|b| Value::Bool(!b)),
        "lt" => less(&a[0], &a[1]).map(Value::Bool),
        "le" => less_or_eq(&a[0], &a[1]).map(Value::Bool),
        "gt" => less_or_eq(&a[0], &a[1]).map(|b| Value::Bool(!b)),
        "ge" => less(&a[0], &a[1]).map(|b| Value::Bool(!b)),
        "not" => Ok(Value::Bool(!a[0].truth())),
        "len" => length(&a[0]),
        "index" => index(&a[0], &a[1..]),
        "toUpper" => Ok(Value::Str(map_chars(s(0), char::to_uppercase))),
        "toLower" => Ok(Value::Str(map_chars(s(0), char::to_lowercase))),
        "title" => Ok(Value::Str(title(s(0)))),
        "reReplaceAll" => compile(s(0)).map(|re| Value::Str(re.replace_all(s(2), s(1)).into_owned())),
        "match" => compile(s(0)).map(|re| Value::Bool(re.is_match(s(1)))),
        "stripPort" => Ok(Value::Str(strip_port(s(0)).to_string())),
        "trimSpace" => Ok(Value::Str(s(0).trim().to_string())),
        "safeHtml" => Ok(Value::Html(s(0).to_string())),
        "stringSlice" => Ok(Value::List(Rc::new(a.clone()), ListType::Strings)),
        "join" => match &a[1] {
            Value::List(items, ListType::Strings) => Ok(Value::Str(items.iter().map(sprint).collect::<Vec<_>>().join(s(0)))),
            other => Err(format!("wrong type for value; expected []string; got {}", other.type_name())),
        },
        _ => Err(format!("function {} not defined", go_quote(name))),
    }
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| format!("error parsing regexp: {e}"))
}

/// Prometheus's `convertToFloat`: numbers, and strings parsed as Go's `strconv.ParseFloat`.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

fn parse_go_float(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    let special = matches!(body, "inf" | "infinity") || (lower == "nan");
    let ok = special || (!body.is_empty() && body.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-')));
    match s.parse::<f64>() {
        Ok(f) if ok && (f.is_finite() || special) => Ok(f),
        Ok(_) if ok => Err(format!("strconv.ParseFloat: parsing {}: value out of range", go_quote(s))),
        _ => Err(format!("strconv.ParseFloat: parsing {}: invalid syntax", go_quote(s))),
    }
}

/// Scales `v` by `step` (up or down) through the prefixes, as Prometheus's humanize functions do.
fn scale<'a>(mut v: f64, up: bool, step: f64, prefixes: &[&'a str]) -> (f64, &'a str) {
    let mut prefix = "";
    for p in prefixes {
        if (up && v.abs() < step) || (!up && v.abs() >= 1.0) {
            break;
        }
        prefix = p;
        v = if up { v / step } else { v * step };
    }
    (v, prefix)
}

const SMALL: &[&str] = &["m", "u", "n", "p", "f", "a", "z", "y"];

fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    let (v, p) =
        if v.abs() >= 1.0 { scale(v, true, 1000.0, &["k", "M", "G", "T", "P", "E", "Z", "Y"]) } else { scale(v, false, 1000.0, SMALL) };
    format!("{}{p}", fmt_g(v, Some(4)))
}

fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    let (v, p) = scale(v, true, 1024.0, &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]);
    format!("{}{p}", fmt_g(v, Some(4)))
}

fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", fmt_g(v, Some(4)));
    }
    if v.abs() < 1.0 {
        let (v, p) = scale(v, false, 1000.0, SMALL);
        return format!("{}{p}s", fmt_g(v, Some(4)));
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let v = v.abs();
    let d = go_int64(v);
    let (secs, mins, hours, days) = (d % 60, d / 60 % 60, d / 3600 % 24, d / 86400);
    if days != 0 {
        format!("{sign}{days}d {hours}h {mins}m {secs}s")
    } else if hours != 0 {
        format!("{sign}{hours}h {mins}m {secs}s")
    } else if mins != 0 {
        format!("{sign}{mins}m {secs}s")
    } else {
        format!("{sign}{}s", fmt_g(v, Some(4)))
    }
}

/// Go's conversion of a float64 to int64 on amd64: out of range (and NaN) gives the minimum.
fn go_int64(v: f64) -> i64 {
    if !(i64::MIN as f64..i64::MAX as f64).contains(&v) {
        return i64::MIN;
    }
    v as i64
}

/// Go's `time.Time.String()` in UTC of a unix timestamp, at millisecond precision.
fn humanize_timestamp(v: f64) -> Result<String, String> {
    if !v.is_finite() {
        return Ok(fmt_g(v, Some(4)));
    }
    let ns = v * 1e9;
    if !(i64::MIN as f64..=i64::MAX as f64).contains(&ns) {
        return Err(format!("{} cannot be represented as a nanoseconds timestamp since it overflows int64", sprint(&Value::Float(v))));
    }
    let ms = go_int64(ns) / 1_000_000;
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let (y, m, d) = fleetwatch_common::calendar::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let mut out = format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if frac != 0 {
        let f = format!(".{frac:03}");
        out.push_str(f.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    Ok(out)
}

/// Maps each character, keeping it when the mapping is not a single character (as Go does).
fn map_chars<I: Iterator<Item = char>>(s: &str, f: fn(char) -> I) -> String {
    s.chars()
        .map(|c| {
            let mut it = f(c);
            match (it.next(), it.next()) {
                (Some(m), None) => m,
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut prev = ' ';
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_separator(prev) {
            out.push_str(&map_chars(c.encode_utf8(&mut [0; 4]), char::to_uppercase));
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    !(c.is_alphabetic() || c.is_numeric()) && c.is_whitespace()
}

/// Go's `net.SplitHostPort` host, or the input when it does not split.
fn strip_port(hp: &str) -> &str {
    let Some(i) = hp.rfind(':') else { return hp };
    let (host, j, k) = if hp.starts_with('[') {
        let Some(end) = hp.find(']') else { return hp };
        if end + 1 != i {
            return hp;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return hp;
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return hp;
    }
    host
}

fn length(v: &Value) -> FResult {
    match v {
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        Value::Map(m) | Value::KV(m) => Ok(Value::Int(m.len() as i64)),
        Value::List(l, _) => Ok(Value::Int(l.len() as i64)),
        Value::Html(s) => Ok(Value::Int(s.len() as i64)),
        Value::Nil => Err("len of nil pointer".into()),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

fn index(item: &Value, indexes: &[Value]) -> FResult {
    let mut item = item.clone();
    for ix in indexes {
        item = match (&item, ix) {
            (Value::Map(m) | Value::KV(m), Value::Str(k)) => Value::Str(m.get(k).cloned().unwrap_or_default()),
            (Value::List(l, _), Value::Int(i)) => match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                Some(v) => v.clone(),
                None => return Err(format!("index out of range: {i}")),
            },
            (Value::Map(_), Value::Nil) => return Err("value is nil; should be of type string".into()),
            (Value::Map(_), k) => return Err(format!("value has type {}; should be string", k.type_name())),
            (Value::Str(s), Value::Int(i)) => match usize::try_from(*i).ok().and_then(|i| s.as_bytes().get(i)) {
                Some(b) => Value::Int(i64::from(*b)),
                None => return Err(format!("index out of range: {i}")),
            },
            (Value::Str(_), _) => return Err("cannot index slice/array with type ".to_string() + ix.type_name()),
            (Value::Nil, _) => return Err("index of untyped nil".into()),
            (other, _) => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";

fn eq(a: &Value, others: &[Value]) -> Result<bool, String> {
    if others.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for b in others {
        let equal = match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Str(x), Value::Str(y)) => x == y,
            (Value::Nil, _) | (_, Value::Nil) => matches!((a, b), (Value::Nil, Value::Nil)),
            _ if kind(a) == Kind::Other && kind(b) == Kind::Other => {
                return Err(format!("non-comparable type {}: {}", fmt_value(b, 's', &Spec::default()), b.type_name()))
            }
            _ => return Err(BAD_COMPARISON.into()),
        };
        if equal {
            return Ok(true);
        }
    }
    Ok(false)
}

fn less(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (kind(a), kind(b));
    if matches!(ka, Kind::Other | Kind::Bool) && ka == kb || ka == Kind::Other || kb == Kind::Other {
        return Err("invalid type for comparison".into());
    }
    if ka != kb {
        return Err(BAD_COMPARISON.into());
    }
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        _ => return Err("invalid type for comparison".into()),
    })
}

fn less_or_eq(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(less(a, b)? || eq(a, std::slice::from_ref(b))?)
}

// ---------------------------------------------------------------------------------------------
// Go's fmt
// ---------------------------------------------------------------------------------------------

/// What `{{ x }}` prints: Go's `fmt.Fprint`, with `<no value>` for nil.
fn print_value(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("<no value>"),
        v => out.push_str(&sprint(v)),
    }
}

/// Go's `fmt.Sprint` of one value (`%v`).
fn sprint(v: &Value) -> String {
    fmt_value(v, 'v', &Spec::default())
}

/// Go's `fmt.Sprint`/`fmt.Sprintln` of several values.
fn sprint_args(args: &[Value], ln: bool) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_));
        if i > 0 && (ln || !is_str(a) && !is_str(&args[i - 1])) {
            out.push(' ');
        }
        out.push_str(&sprint(a));
    }
    if ln {
        out.push('\n');
    }
    out
}

#[derive(Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` for the verbs templates use.
fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argn = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        parse_flags(&mut chars, &mut spec);
        spec.width = parse_num(&mut chars, args, &mut argn, &mut out, "BADWIDTH");
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(parse_num(&mut chars, args, &mut argn, &mut out, "BADPREC").unwrap_or(0));
        }
        if spec.minus {
            spec.zero = false;
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        match (verb, args.get(argn)) {
            ('%', _) => out.push('%'),
            (_, None) => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
            (_, Some(a)) => {
                argn += 1;
                out.push_str(&fmt_value(a, verb, &spec));
            }
        }
    }
    if argn < args.len() {
        let extra: Vec<String> = args[argn..].iter().map(typed).collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

fn parse_flags(chars: &mut std::iter::Peekable<std::str::Chars>, spec: &mut Spec) {
    while let Some(&c) = chars.peek() {
        match c {
            '-' => spec.minus = true,
            '+' => spec.plus = true,
            '#' => spec.sharp = true,
            ' ' => spec.space = true,
            '0' => spec.zero = true,
            _ => return,
        }
        chars.next();
    }
}

fn parse_num(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    args: &[Value],
    argn: &mut usize,
    out: &mut String,
    bad: &str,
) -> Option<usize> {
    if chars.peek() == Some(&'*') {
        chars.next();
        let n = match args.get(*argn) {
            Some(Value::Int(n)) if (0..1_000_000).contains(n) => Some(*n as usize),
            _ => {
                let _ = write!(out, "%!({bad})");
                None
            }
        };
        *argn += 1;
        return n;
    }
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        n = Some((n.unwrap_or(0) * 10 + d as usize).min(1_000_000));
    }
    n
}

/// `type=value`, as in Go's bad-verb and extra-argument reports.
fn typed(v: &Value) -> String {
    match v {
        Value::Nil => "<nil>".into(),
        v => format!("{}={}", v.type_name(), sprint(v)),
    }
}

fn fmt_value(v: &Value, verb: char, spec: &Spec) -> String {
    if verb == 'T' {
        return pad(v.type_name(), spec, false);
    }
    let done = match v {
        Value::Nil => (verb == 'v').then(|| pad("<nil>", spec, false)),
        Value::Bool(b) => matches!(verb, 'v' | 't').then(|| pad(&b.to_string(), spec, false)),
        Value::Int(i) => fmt_int(*i, verb, spec),
        Value::Float(f) => fmt_float(*f, verb, spec),
        Value::Str(s) => fmt_str(s, verb, spec),
        Value::Map(m) | Value::KV(m) => Some(fmt_map(m, verb, spec)),
        Value::Data(d) => Some(fmt_data(d, verb, spec)),
        Value::List(items, _) => Some(format!("[{}]", items.iter().map(|i| fmt_value(i, verb, spec)).collect::<Vec<_>>().join(" "))),
        Value::Obj(o) => {
            let fields: Vec<String> = o.fields.iter().map(|(_, v)| fmt_value(v, verb, spec)).collect();
            let amp = if o.ty == ObjType::Data { "&" } else { "" };
            Some(format!("{amp}{{{}}}", fields.join(" ")))
        }
        Value::Time(t) => matches!(verb, 'v' | 's').then(|| pad(&go_time_string(*t), spec, false)),
        Value::Html(h) => fmt_str(h, verb, spec),
    };
    done.unwrap_or_else(|| format!("%!{verb}({})", typed(v)))
}

fn fmt_map(m: &BTreeMap<String, String>, verb: char, spec: &Spec) -> String {
    let items: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}:{}", fmt_value(&Value::Str(k.clone()), verb, spec), fmt_value(&Value::Str(v.clone()), verb, spec)))
        .collect();
    format!("map[{}]", items.join(" "))
}

fn fmt_data(d: &Data, verb: char, spec: &Spec) -> String {
    let fields = [
        fmt_map(&d.labels, verb, spec),
        fmt_map(&d.external_labels, verb, spec),
        fmt_value(&Value::Str(d.external_url.clone()), verb, spec),
        fmt_value(&Value::Float(d.value), verb, spec),
    ];
    format!("{{{}}}", fields.join(" "))
}

/// Pads to the width: left-justified with `-`, zero-filled (after any sign) with `0`.
fn pad(s: &str, spec: &Spec, zero_ok: bool) -> String {
    let n = s.chars().count();
    let Some(w) = spec.width.filter(|w| *w > n) else { return s.to_string() };
    let fill = w - n;
    if spec.minus {
        return format!("{s}{}", " ".repeat(fill));
    }
    if spec.zero && zero_ok {
        let sign_len = usize::from(s.starts_with(['+', '-', ' ']));
        return format!("{}{}{}", &s[..sign_len], "0".repeat(fill), &s[sign_len..]);
    }
    format!("{}{s}", " ".repeat(fill))
}

fn sign_prefix(neg: bool, spec: &Spec) -> &'static str {
    match (neg, spec.plus, spec.space) {
        (true, _, _) => "-",
        (false, true, _) => "+",
        (false, false, true) => " ",
        _ => "",
    }
}

fn fmt_int(i: i64, verb: char, spec: &Spec) -> Option<String> {
    let u = i.unsigned_abs();
    let (digits, prefix) = match verb {
        'v' | 'd' => (u.to_string(), ""),
        'b' => (format!("{u:b}"), "0b"),
        'o' | 'O' => (format!("{u:o}"), if verb == 'O' { "0o" } else { "0" }),
        'x' => (format!("{u:x}"), "0x"),
        'X' => (format!("{u:X}"), "0X"),
        'c' => return Some(pad(&char::from_u32(u32::try_from(i).ok()?).unwrap_or('\u{FFFD}').to_string(), spec, false)),
        'q' => return Some(pad(&go_quote_char(char::from_u32(u32::try_from(i).ok()?).unwrap_or('\u{FFFD}')), spec, false)),
        'U' => return Some(pad(&format!("U+{u:04X}"), spec, false)),
        _ => return None,
    };
    let digits = match spec.prec {
        Some(0) if i == 0 => String::new(),
        Some(p) if p > digits.len() => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits,
    };
    let prefix = if spec.sharp || verb == 'O' { prefix } else { "" };
    let s = format!("{}{prefix}{digits}", sign_prefix(i < 0, spec));
    Some(pad(&s, spec, spec.prec.is_none()))
}

fn fmt_float(f: f64, verb: char, spec: &Spec) -> Option<String> {
    let body = match verb {
        'v' => fmt_g_abs(f.abs(), None, 'e'),
        'g' | 'G' => fmt_g_abs(f.abs(), spec.prec, if verb == 'G' { 'E' } else { 'e' }),
        'e' | 'E' => fmt_e_abs(f.abs(), spec.prec.unwrap_or(6), verb),
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f.abs()),
        _ => return None,
    };
    if f.is_nan() {
        let s = if spec.plus {
            "+NaN"
        } else if spec.space {
            " NaN"
        } else {
            "NaN"
        };
        return Some(pad(s, spec, false));
    }
    if f.is_infinite() {
        let sign = if f < 0.0 {
            "-"
        } else if spec.space && !spec.plus {
            " "
        } else {
            "+"
        };
        return Some(pad(&format!("{sign}Inf"), spec, false));
    }
    Some(pad(&format!("{}{body}", sign_prefix(f.is_sign_negative(), spec)), spec, true))
}

fn fmt_str(s: &str, verb: char, spec: &Spec) -> Option<String> {
    let s: String = match spec.prec {
        Some(p) if matches!(verb, 'v' | 's' | 'q') => s.chars().take(p).collect(),
        _ => s.to_string(),
    };
    let out = match verb {
        'v' | 's' => s,
        'q' => go_quote(&s),
        'x' | 'X' => hex_bytes(&s, verb == 'X', spec),
        _ => return None,
    };
    Some(pad(&out, spec, true))
}

fn hex_bytes(s: &str, upper: bool, spec: &Spec) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        if spec.space && i > 0 {
            out.push(' ');
        }
        if spec.sharp && (spec.space || i == 0) {
            out.push_str(if upper { "0X" } else { "0x" });
        }
        let _ = if upper { write!(out, "{b:02X}") } else { write!(out, "{b:02x}") };
    }
    out
}

/// Go's `strconv.FormatFloat(v, 'g', prec, 64)`, with a sign only for negative numbers.
fn fmt_g(v: f64, prec: Option<usize>) -> String {
    fmt_float(v, 'g', &Spec { prec, ..Spec::default() }).unwrap_or_default()
}

/// Decimal digits (without trailing zeros) and the decimal point position of a finite |v|:
/// the shortest that round-trips, or rounded to `sig` significant digits.
fn decimal_digits(v: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    if v == 0.0 || !v.is_finite() {
        return (Vec::new(), 0);
    }
    let s = match sig {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), v),
        None => format!("{v:e}"),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits == [b'0'] {
        digits.clear();
    }
    (digits, exp.parse::<i32>().unwrap_or(0) + 1)
}

fn fmt_g_abs(v: f64, prec: Option<usize>, e: char) -> String {
    let shortest = prec.is_none();
    let prec = prec.map(|p| p.max(1));
    let (digits, dp) = decimal_digits(v, prec);
    let nd = digits.len() as i32;
    let mut p = prec.map_or(nd, |p| p.min(10_000) as i32);
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        if p > nd {
            p = nd;
        }
        return fmt_e_digits(&digits, dp, (p - 1).max(0) as usize, e);
    }
    if p > dp {
        p = nd;
    }
    fmt_f_digits(&digits, dp, (p - dp).max(0) as usize)
}

fn fmt_e_abs(v: f64, prec: usize, e: char) -> String {
    let (digits, dp) = decimal_digits(v, Some(prec.min(10_000) + 1));
    fmt_e_digits(&digits, dp, prec, e)
}

/// Go's `fmtE` on decimal digits.
fn fmt_e_digits(digits: &[u8], dp: i32, prec: usize, e: char) -> String {
    let mut out = String::new();
    out.push(digits.first().map_or('0', |d| *d as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(digits.get(i).map_or('0', |d| *d as char));
        }
    }
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    let _ = write!(out, "{e}{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs());
    out
}

/// Go's `fmtF` on decimal digits.
fn fmt_f_digits(digits: &[u8], dp: i32, prec: usize) -> String {
    let mut out = String::new();
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(digits.get(i).map_or('0', |d| *d as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec as i32 {
            let j = dp + i;
            out.push(if j >= 0 { digits.get(j as usize).map_or('0', |d| *d as char) } else { '0' });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Go string literals
// ---------------------------------------------------------------------------------------------

/// Go's `strconv.Quote` (also `%q` of a string).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        quote_char_into(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune`.
fn go_quote_char(c: char) -> String {
    let mut out = String::from("'");
    quote_char_into(&mut out, c, '\'');
    out.push('\'');
    out
}

fn quote_char_into(out: &mut String, c: char, quote: char) {
    let _ = match c {
        c if c == quote || c == '\\' => write!(out, "\\{c}"),
        '\x07' => write!(out, "\\a"),
        '\x08' => write!(out, "\\b"),
        '\x0c' => write!(out, "\\f"),
        '\n' => write!(out, "\\n"),
        '\r' => write!(out, "\\r"),
        '\t' => write!(out, "\\t"),
        '\x0b' => write!(out, "\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(out, "\\x{:02x}", c as u32),
        c if c.is_control() || (c.is_whitespace() && c != ' ') => match c as u32 {
            u @ 0..=0xffff => write!(out, "\\u{u:04x}"),
            u => write!(out, "\\U{u:08x}"),
        },
        c => write!(out, "{c}"),
    };
}

/// Go's `strconv.Unquote` of a `"…"`, `'…'` or `` `…` `` literal; None when invalid.
fn go_unquote(lit: &str) -> Option<String> {
    let quote = lit.chars().next()?;
    let inner = lit.strip_prefix(quote)?.strip_suffix(quote)?;
    if quote == '`' {
        return Some(inner.replace('\r', ""));
    }
    let mut bytes = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        unescape(&mut chars, quote, &mut bytes)?;
    }
    String::from_utf8(bytes).ok()
}

fn unescape(chars: &mut std::str::Chars, quote: char, out: &mut Vec<u8>) -> Option<()> {
    let simple = |b: u8| Some(vec![b]);
    let bytes = match chars.next()? {
        'a' => simple(7),
        'b' => simple(8),
        'f' => simple(12),
        'n' => simple(b'\n'),
        'r' => simple(b'\r'),
        't' => simple(b'\t'),
        'v' => simple(11),
        '\\' => simple(b'\\'),
        c @ ('\'' | '"') if c == quote => simple(c as u8),
        'x' => simple(u8::from_str_radix(&take(chars, 2)?, 16).ok()?),
        c @ '0'..='7' => simple(u8::try_from(u32::from_str_radix(&format!("{c}{}", take(chars, 2)?), 8).ok()?).ok()?),
        'u' => Some(char::from_u32(u32::from_str_radix(&take(chars, 4)?, 16).ok()?)?.to_string().into_bytes()),
        'U' => Some(char::from_u32(u32::from_str_radix(&take(chars, 8)?, 16).ok()?)?.to_string().into_bytes()),
        _ => None,
    }?;
    out.extend(bytes);
    Some(())
}

fn take(chars: &mut std::str::Chars, n: usize) -> Option<String> {
    let s: String = chars.take(n).collect();
    (s.len() == n).then_some(s)
}

// ---------------------------------------------------------------------------------------------
// Notification data (Alertmanager's template model)
// ---------------------------------------------------------------------------------------------

/// What a `Value::List` holds, for its type name and methods.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ListType {
    Strings,
    Pairs,
    Alerts,
}

impl ListType {
    fn name(self) -> &'static str {
        match self {
            ListType::Strings => "[]string",
            ListType::Pairs => "template.Pairs",
            ListType::Alerts => "template.Alerts",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ObjType {
    Data,
    Alert,
    Pair,
}

impl ObjType {
    fn name(self) -> &'static str {
        match self {
            ObjType::Data => "*template.Data",
            ObjType::Alert => "template.Alert",
            ObjType::Pair => "template.Pair",
        }
    }
}

/// A struct value: its type and its fields in declaration order.
#[derive(Debug)]
struct Obj {
    ty: ObjType,
    fields: Vec<(&'static str, Value)>,
}

fn obj(ty: ObjType, fields: Vec<(&'static str, Value)>) -> Value {
    Value::Obj(Rc::new(Obj { ty, fields }))
}

fn kv(m: &BTreeMap<String, String>) -> Value {
    Value::KV(Rc::new(m.clone()))
}

fn strings<'a>(items: impl Iterator<Item = &'a String>) -> Value {
    Value::List(Rc::new(items.map(|s| Value::Str(s.clone())).collect()), ListType::Strings)
}

/// The root value of a notification template: Alertmanager's `template.Data`.
fn notification_value(n: &crate::notify::message::Notification) -> Value {
    let alerts = n
        .alerts
        .iter()
        .map(|a| {
            obj(
                ObjType::Alert,
                vec![
                    ("Status", Value::Str(a.status.as_str().to_string())),
                    ("Labels", kv(&a.labels)),
                    ("Annotations", kv(&a.annotations)),
                    ("StartsAt", Value::Time(Some(a.starts_at_ms))),
                    ("EndsAt", Value::Time(a.ends_at_ms)),
                    ("GeneratorURL", Value::Str(a.generator_url.clone())),
                    ("Fingerprint", Value::Str(a.fingerprint.clone())),
                ],
            )
        })
        .collect();
    obj(
        ObjType::Data,
        vec![
            ("Receiver", Value::Str(n.receiver.clone())),
            ("Status", Value::Str(n.status.as_str().to_string())),
            ("Alerts", Value::List(Rc::new(alerts), ListType::Alerts)),
            ("GroupLabels", kv(&n.group_labels)),
            ("CommonLabels", kv(&n.common_labels)),
            ("CommonAnnotations", kv(&n.common_annotations)),
            ("ExternalURL", Value::Str(n.external_url.clone())),
        ],
    )
}

/// A field or argument-less method of Alertmanager's types; `None` when there is none.
fn notify_field(v: Value, name: &str) -> Option<Value> {
    match (v, name) {
        (Value::KV(m), "SortedPairs") => {
            let pairs = m.iter().map(|(k, v)| obj(ObjType::Pair, vec![("Name", Value::Str(k.clone())), ("Value", Value::Str(v.clone()))]));
            Some(Value::List(Rc::new(pairs.collect()), ListType::Pairs))
        }
        (Value::KV(m), "Names") => Some(strings(m.keys())),
        (Value::KV(m), "Values") => Some(strings(m.values())),
        (Value::KV(m), key) => Some(Value::Str(m.get(key).cloned().unwrap_or_default())),
        (Value::List(items, ListType::Alerts), "Firing" | "Resolved") => {
            let want = if name == "Firing" { "firing" } else { "resolved" };
            let keep = items.iter().filter(|a| matches!(a, Value::Obj(o) if matches!(&o.fields[0].1, Value::Str(s) if s == want)));
            Some(Value::List(Rc::new(keep.cloned().collect()), ListType::Alerts))
        }
        (Value::List(items, ListType::Pairs), "Names" | "Values") => {
            let i = usize::from(name == "Values");
            let out = items.iter().filter_map(|p| match p {
                Value::Obj(o) => Some(o.fields[i].1.clone()),
                _ => None,
            });
            Some(Value::List(Rc::new(out.collect()), ListType::Strings))
        }
        (Value::Obj(o), field) => o.fields.iter().find(|(n, _)| *n == field).map(|(_, v)| v.clone()),
        (Value::Time(t), "Unix") => Some(Value::Int(t.map_or(ZERO_TIME_UNIX, |ms| ms.div_euclid(1000)))),
        (Value::Time(t), "String") => Some(Value::Str(go_time_string(t))),
        (Value::Time(t), "IsZero") => Some(Value::Bool(t.is_none())),
        _ => None,
    }
}

/// Go's zero time (0001-01-01 UTC) as Unix seconds.
const ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Civil date-time of a time in UTC: (year, month, day, hour, minute, second, millisecond, weekday 0=Sunday).
fn civil(t: Option<i64>) -> (i64, i64, i64, i64, i64, i64, i64, i64) {
    let ms = t.unwrap_or(ZERO_TIME_UNIX * 1000);
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = fleetwatch_common::calendar::civil_from_days(days);
    let s = secs.rem_euclid(86_400);
    (y, m, d, s / 3600, s / 60 % 60, s % 60, ms.rem_euclid(1000), (days + 4).rem_euclid(7))
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999 +0000 UTC`.
fn go_time_string(t: Option<i64>) -> String {
    go_time_format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Go's `time.Time.Format` for the common layout elements, in UTC.
fn go_time_format(t: Option<i64>, layout: &str) -> String {
    let (y, mo, d, h, mi, s, ms, wd) = civil(t);
    let month = MONTHS[(mo - 1) as usize];
    let day = DAYS[wd as usize];
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        let frac = |r: &str| r.starts_with(".000") || r.starts_with(".999") || r.starts_with(",000") || r.starts_with(",999");
        if frac(rest) {
            let n = rest[1..].bytes().take_while(|b| *b == rest.as_bytes()[1]).count();
            let digits = format!("{ms:03}000000");
            let mut part = digits[..n.min(9)].to_string();
            if rest.as_bytes()[1] == b'9' {
                part = part.trim_end_matches('0').to_string();
                if !part.is_empty() {
                    out.push('.');
                }
            } else {
                out.push('.');
            }
            out.push_str(&part);
            rest = &rest[1 + n..];
            continue;
        }
        let tokens: [(&str, String); 20] = [
            ("2006", format!("{y:04}")),
            ("January", month.to_string()),
            ("Jan", month[..3].to_string()),
            ("Monday", day.to_string()),
            ("Mon", day[..3].to_string()),
            ("MST", "UTC".to_string()),
            ("Z07:00", "Z".to_string()),
            ("Z0700", "Z".to_string()),
            ("-07:00", "+00:00".to_string()),
            ("-0700", "+0000".to_string()),
            ("01", format!("{mo:02}")),
            ("02", format!("{d:02}")),
            ("_2", format!("{d:>2}")),
            ("15", format!("{h:02}")),
            ("03", format!("{:02}", (h + 11) % 12 + 1)),
            ("04", format!("{mi:02}")),
            ("05", format!("{s:02}")),
            ("PM", if h >= 12 { "PM" } else { "AM" }.to_string()),
            ("06", format!("{:02}", y % 100)),
            ("pm", if h >= 12 { "pm" } else { "am" }.to_string()),
        ];
        match tokens.iter().find(|(tok, _)| rest.starts_with(tok)) {
            Some((tok, v)) => {
                out.push_str(v);
                rest = &rest[tok.len()..];
            }
            None => {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// What an action prints, as a string (nil prints nothing in HTML templates).
fn sprint_printed(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        v => sprint(v),
    }
}

/// Escapes text for HTML element content and attribute values, as Go's html/template does.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Template>();
    }

    use super::*;

    const URL: &str = "http://alerts.example.com:9090/prom";

    fn ext() -> BTreeMap<String, String> {
        BTreeMap::from([("cluster".to_string(), "eu1".to_string()), ("region".to_string(), "west".to_string())])
    }

    fn render_with(name: &str, text: &str, labels: &[(String, String)], value: f64) -> String {
        let ext = ext();
        let data = TemplateData { labels: labels.to_vec(), external_labels: &ext, external_url: URL, value };
        match Template::parse(name, text) {
            Ok(t) => render_or_error(&t, &data),
            Err(e) => format!("PARSE: {e}"),
        }
    }

    /// Renders with the labels of the `TplLabels` alert's first series in tests/templates.
    fn render(text: &str, value: f64) -> String {
        let labels = [
            ("__name__", "tpl_labels"),
            ("instance", "db-1.example.com:9100"),
            ("job", "node"),
            ("path", "/var/lib/mysql"),
            ("severity", "critical"),
            ("team", "dba"),
        ];
        let labels: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        render_with("__alert_TplLabels", text, &labels, value)
    }

    fn parse_error(text: &str) -> String {
        match Template::parse("__alert_P", text) {
            Ok(_) => "parsed".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn template_humanize_functions_match_prometheus() {
        let cases = [
            ("{{ humanize $value }}", 1234567.0, "1.235M"),
            ("{{ humanize $value }}", 0.0012, "1.2m"),
            ("{{ humanize $value }}", 0.0, "0"),
            ("{{ humanize $value }}", -1500.0, "-1.5k"),
            ("{{ humanize $value }}", 1e-30, "1e-06y"),
            ("{{ humanize $value }}", 1e21, "1Z"),
            ("{{ humanize $value }}", f64::NAN, "NaN"),
            ("{{ humanize $value }}", f64::INFINITY, "+Inf"),
            ("{{ humanize $value }}", 999.99, "1000"),
            ("{{ humanize1024 $value }}", 2048.0, "2ki"),
            ("{{ humanize1024 $value }}", 1234567.0, "1.177Mi"),
            ("{{ humanize1024 $value }}", 0.5, "0.5"),
            ("{{ humanizeDuration $value }}", 3661.0, "1h 1m 1s"),
            ("{{ humanizeDuration $value }}", 0.25, "250ms"),
            ("{{ humanizeDuration $value }}", 0.0, "0s"),
            ("{{ humanizeDuration $value }}", 1.5, "1.5s"),
            ("{{ humanizeDuration $value }}", 86400.5, "1d 0h 0m 0s"),
            ("{{ humanizeDuration $value }}", -1500.0, "-25m 0s"),
            ("{{ humanizeDuration $value }}", 1e21, "-106751991167300d -15h -30m -8s"),
            ("{{ humanizePercentage $value }}", 0.1234, "12.34%"),
            ("{{ humanizePercentage $value }}", 1234567.0, "1.235e+08%"),
            ("{{ humanizeTimestamp $value }}", 1257894000.0, "2009-11-10 23:00:00 +0000 UTC"),
            ("{{ humanizeTimestamp $value }}", 1257894000.123, "2009-11-10 23:00:00.122 +0000 UTC"),
            ("{{ humanizeTimestamp $value }}", 86400.5, "1970-01-02 00:00:00.5 +0000 UTC"),
            ("{{ humanizeTimestamp $value }}", f64::NEG_INFINITY, "-Inf"),
            ("{{ $value | printf \"%.1f\" | humanize }}", 1234567.0, "1.235M"),
            ("{{ humanizePercentage \"0.5\" }}", 0.0, "50%"),
        ];
        for (text, value, want) in cases {
            assert_eq!(render(text, value), want, "{text} with {value}");
        }
    }

    #[test]
    fn template_floats_print_like_go() {
        let cases = [
            (0.1, "0.1"),
            (1e6, "1e+06"),
            (12345678.0, "1.2345678e+07"),
            (123456.0, "123456"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (-0.0, "-0"),
            (1e300, "1e+300"),
            (0.3333333333333333, "0.3333333333333333"),
        ];
        for (value, want) in cases {
            assert_eq!(render("{{ $value }}", value), want);
            assert_eq!(render("{{ .Value }}", value), want);
        }
    }

    #[test]
    fn template_labels_variables_and_control_flow() {
        let cases = [
            ("Instance {{ $labels.instance }} of job {{ .Labels.job }} is down", "Instance db-1.example.com:9100 of job node is down"),
            (
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
                "__name__=tpl_labels;instance=db-1.example.com:9100;job=node;path=/var/lib/mysql;severity=critical;team=dba;",
            ),
            (
                r#"{{ range $v := $labels }}{{ if eq $v "node" }}{{ continue }}{{ end }}{{ if eq $v "critical" }}{{ break }}{{ end }}[{{ $v }}]{{ end }}"#,
                "[tpl_labels][db-1.example.com:9100][/var/lib/mysql]",
            ),
            ("{{ range $externalLabels }}[{{ . }}]{{ else }}none{{ end }}", "[eu1][west]"),
            ("[{{ $labels.nope }}][{{ .Labels.nope }}][{{ $externalLabels.nope }}]", "[][][]"),
            (
                "{{ $externalLabels.cluster }} {{ $externalURL }} {{ .ExternalURL }}",
                "eu1 http://alerts.example.com:9090/prom http://alerts.example.com:9090/prom",
            ),
            (r#"{{ if eq $labels.severity "critical" "page" }}PAGE{{ else if ne $labels.severity "" }}x{{ else }}none{{ end }}"#, "PAGE"),
            (
                "{{ with $labels.team }}team {{ . }}{{ else }}no team{{ end }}|{{ with $labels.nope }}x{{ else }}none{{ end }}",
                "team dba|none",
            ),
            ("a  {{- /* comment */ -}}  b {{- \" c \" -}} d {{/* x */}} e\n  {{- $labels.job }}", "ab c d  enode"),
            (
                r#"{{ $x := "a" }}{{ $x = printf "%s-%s" $x $labels.job }}{{ $x }}{{ if true }}{{ $y := 1 }}{{ $y }}{{ $x = "b" }}{{ end }}{{ $x }}"#,
                "a-node1b",
            ),
            (
                r#"{{ and $labels.team $labels.job }}|{{ or $labels.nope "fallback" }}|{{ not $labels.team }}|{{ and 1 0 "x" }}"#,
                "node|fallback|false|0",
            ),
            (
                "{{ 1 }} {{ 1.5 }} {{ 1e6 }} {{ 1.0 }} {{ -3 }} {{ true }} {{ \"s\\tq\" }} {{ `raw\\n` }} {{ 'a' }} {{ 0x1F }}",
                "1 1.5 1e+06 1 -3 true s\tq raw\\n 97 31",
            ),
            (r#"{{ (printf "%s" (toUpper $labels.job)) }}|{{ (index $labels "job") | len }}|{{ len $labels }}"#, "NODE|4|6"),
            (
                r#"{{ toUpper $labels.job }}|{{ toLower "MiXeD ÄÖ" }}|{{ title "hello wORLD-foo_bar x.y" }}"#,
                "NODE|mixed äö|Hello WORLD-Foo_bar X.Y",
            ),
            (
                r#"{{ stripPort $labels.instance }}|{{ stripPort "[::1]:9090" }}|{{ stripPort "10.0.0.1:80:90" }}"#,
                "db-1.example.com|::1|10.0.0.1:80:90",
            ),
            (
                r##"{{ reReplaceAll "(.*):(.*)" "$2 on ${1}" $labels.instance }}|{{ reReplaceAll "\\d" "#" $labels.instance }}"##,
                "9100 on db-1.example.com|db-#.example.com:####",
            ),
            (r#"{{ if match "^db-" $labels.instance }}database{{ else }}other{{ end }}|{{ match "prom" $labels.job }}"#, "database|false"),
            (r#"{{ lt "a" "b" }} {{ ge 2 1 }} {{ le 1.5 1.5 }} {{ eq 1 2 3 1 }} {{ gt 2.5 1.5 }}"#, "true true true true true"),
            ("{{ if gt $value 1000.0 }}big{{ else if lt $value 0.0 }}negative{{ else }}small{{ end }}", "small"),
            (
                "{{ .ExternalLabels }}|{{ printf \"%q\" .ExternalLabels }}",
                r#"map[cluster:eu1 region:west]|map["cluster":"eu1" "region":"west"]"#,
            ),
            ("{{ printf \"%s/%s\"\n  $labels.job\n  $labels.instance }}", "node/db-1.example.com:9100"),
        ];
        for (text, want) in cases {
            assert_eq!(render(text, 3.0), want, "{text}");
        }
    }

    #[test]
    fn template_printf_verbs() {
        let cases = [
            (r#"{{ printf "%.2f|%g|%e|%v|%.3g|%E|%G|%.0f" $value $value $value $value $value $value $value $value }}"#, 1234567.0),
            (r#"{{ printf "[%8.2f][%-8.1f][%08.3f][%+.1e][% .2f][%10v]" $value $value $value $value $value $value }}"#, 56.789),
            (r#"{{ printf "%d|%s|%t" $value $value $value }}"#, 1.5),
            (r#"{{ printf "%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%c|%q|%.3d|%#x" 42 42 -42 42 255 255 8 5 65 65 7 255 }}"#, 0.0),
            (r#"{{ printf "%q|%12s|%-12s|%.3s|%x" $labels.job $labels.job $labels.job $labels.job $labels.job }}"#, 0.0),
            (r#"{{ printf "%s %s" "a" }}|{{ printf "%s" "a" "b" 3 }}|{{ printf "100%%" }}|{{ printf "%z" 1 }}|{{ printf "%" }}"#, 0.0),
            (r#"{{ print "a" "b" 1 2 "c" 3.5 true }}|{{ println 1 "x" }}"#, 0.0),
        ];
        let want = [
            "1234567.00|1.234567e+06|1.234567e+06|1.234567e+06|1.23e+06|1.234567E+06|1.234567E+06|1234567",
            "[   56.79][56.8    ][0056.789][+5.7e+01][ 56.79][    56.789]",
            "%!d(float64=1.5)|%!s(float64=1.5)|%!t(float64=1.5)",
            "   42|42   |-0042|+42|ff|FF|10|101|A|'A'|007|0xff",
            "\"node\"|        node|node        |nod|6e6f6465",
            "a %!s(MISSING)|a%!(EXTRA string=b, int=3)|100%|%!z(int=1)|%!(NOVERB)",
            "ab1 2c3.5 true|1 x\n",
        ];
        for ((text, value), want) in cases.into_iter().zip(want) {
            assert_eq!(render(text, value), want, "{text}");
        }
    }

    #[test]
    fn template_runtime_errors_render_like_prometheus() {
        let prefix = "<error expanding template: error executing template __alert_TplLabels: template: __alert_TplLabels:";
        let cases = [
            ("{{ gt $value 1 }}", "1:115: executing \"__alert_TplLabels\" at <gt $value 1>: error calling gt: incompatible types for comparison>"),
            (
                "{{ humanize \"abc\" }}",
                "1:115: executing \"__alert_TplLabels\" at <humanize \"abc\">: error calling humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax>",
            ),
            ("{{ $labels.instance.foo }}", "1:122: executing \"__alert_TplLabels\" at <$labels.instance.foo>: can't evaluate field foo in type string>"),
            ("{{ toUpper $value }}", "1:123: executing \"__alert_TplLabels\" at <$value>: wrong type for value; expected string; got float64>"),
            ("{{ humanize }}", "1:115: executing \"__alert_TplLabels\" at <humanize>: wrong number of args for humanize: want 1 got 0>"),
            ("{{ $value 1 }}", "1:115: executing \"__alert_TplLabels\" at <$value>: can't give argument to non-function $value>"),
            ("text\nline2 {{ eq $value \"x\" }}", "2:9: executing \"__alert_TplLabels\" at <eq $value \"x\">: error calling eq: incompatible types for comparison>"),
            ("{{ range $value }}x{{ end }}", "1:121: executing \"__alert_TplLabels\" at <$value>: range can't iterate over 3>"),
        ];
        for (text, want) in cases {
            assert_eq!(render(text, 3.0), format!("{prefix}{want}"), "{text}");
        }
        let t = Template::parse("x", "{{ humanizeTimestamp 1e300 }}").expect("parses");
        let ext = ext();
        let data = TemplateData { labels: vec![], external_labels: &ext, external_url: "", value: 0.0 };
        assert!(matches!(t.render(&data), Err(TemplateError::Exec { .. })));
        assert!(render(r#"{{ reReplaceAll "(" "x" "y" }}"#, 0.0).contains("error calling reReplaceAll: error parsing regexp"));
    }

    #[test]
    fn template_parse_errors_match_go() {
        // Messages as `promtool check rules` (Prometheus 2.42, Go text/template) reports them.
        let cases = [
            ("{{ foo 1 }}", "1: function \"foo\" not defined"),
            ("{{ $labels.job", "1: unclosed action"),
            ("{{ if true }}x", "1: unexpected EOF"),
            ("{{ end }}", "1: unexpected {{end}}"),
            ("{{ else }}", "1: unexpected {{else}}"),
            ("{{ }}", "1: missing value for command"),
            ("{{ $nope }}", "1: undefined variable \"$nope\""),
            ("{{ \"abc }}", "1: unterminated quoted string"),
            ("{{ 1 | 2 }}", "1: non executable command in pipeline stage 2"),
            ("{{ (1 }}", "1: unclosed left paren"),
            ("{{ 1) }}", "1: unexpected \")\" in command"),
            ("{{/* x }}", "1: unclosed comment"),
            ("{{/* x */ }}", "1: comment ends before closing delimiter"),
            ("{{ 3x }}", "1: bad number syntax: \"3x\""),
            ("{{ range $a, $b, $c := $labels }}{{ end }}", "1: too many declarations in range"),
            ("{{ $x, $y := 1 }}", "1: too many declarations in command"),
            ("{{ break }}", "1: {{break}} outside {{range}}"),
            ("{{ if true }}{{ else }}{{ else }}{{ end }}", "1: expected end; found {{else}}"),
            ("{{ \"a\".x }}", "1: unexpected . after term \"\\\"a\\\"\""),
            ("{{ # }}", "1: unexpected \"#\" in command"),
            ("{{ 'ab' }}", "1: malformed character constant: 'ab'"),
            ("{{ \"\\q\" }}", "1: invalid syntax"),
            ("line1\n{{ nope }}", "2: function \"nope\" not defined"),
            ("{{ with $x := 1 }}{{ end }}{{ $x }}", "1: undefined variable \"$x\""),
            ("{{ ` }}", "1: unterminated raw quoted string"),
            ("{{ if }}{{ end }}", "1: missing value for if"),
            ("{{ printf \"%s\" \"a\"\"b\" }}", "1: unexpected \"\\\"b\\\"\" in operand"),
            ("{{ 99999999999999999999 }}", "1: integer overflow: \"99999999999999999999\""),
            ("{{ 1.2.3 }}", "1: unexpected \".3\" in operand"),
            ("{{ -- }}", "1: bad number syntax: \"--\""),
            ("{{ a-b }}", "1: bad character U+002D '-'"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_error(text), format!("error parsing template __alert_P: template: __alert_P:{want}"), "{text}");
        }
    }

    #[test]
    fn template_rejects_query_and_unknown_functions() {
        for f in ["query", "first", "value", "label", "sortByLabel", "strvalue", "args", "safeHtml", "tmpl", "pathPrefix", "externalURL"] {
            let e = parse_error(&format!("{{{{ {f} \"x\" }}}}"));
            assert!(e.ends_with(&format!("function \"{f}\" not defined")), "{e}");
        }
        assert!(parse_error("{{ template \"x\" }}").contains("{{template}} is not supported"));
        assert!(parse_error("{{ define \"x\" }}y{{ end }}").contains("{{define}} is not supported"));
        assert!(parse_error(&"{{ if true }}".repeat(200)).contains("nested too deeply"));
        assert!(parse_error(&format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500))).contains("nested too deeply"));
    }

    #[test]
    fn template_never_panics() {
        let corpus = [
            r#"{{- range $k, $v := $labels -}}{{ printf "%-10s|%08.3f|%q" $k $value $v }}{{ else }}{{ humanize "1e3" }}{{ end }}"#,
            r#"{{ if and (gt $value 1.0) (match "é" $labels.x) }}{{ title "ünï" }}{{ else if not 0 }}{{ index "ab" 1 }}{{ end }}"#,
            r#"{{/* c */}}{{ with $x := $externalLabels }}{{ $x.cluster | toUpper | printf "%*d" }}{{ end }}{{ 'é' }}{{ 0x_1p-2 }}{{ 1+2i }}"#,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let alphabet: Vec<char> = "{}()|$.:=- \"`'\\/*,abdefilnorstuvxy0123456789é\n%".chars().collect();
        let mut inputs: Vec<String> = Vec::new();
        for t in corpus {
            inputs.extend(t.char_indices().map(|(i, _)| t[..i].to_string()));
        }
        for _ in 0..3000 {
            let len = (seed % 40) as usize;
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            inputs.push(format!("{{{{{s}}}}}"));
            inputs.push(s);
        }
        for text in inputs {
            let _ = render(&text, f64::NAN);
            let _ = render(&text, -1e300);
        }
    }

    /// A series selector as written in templates_test.yml: `metric{a="b", c="d"}`.
    fn parse_series(s: &str) -> (String, Vec<(String, String)>) {
        let (metric, rest) = s.split_once('{').expect("series has labels");
        let mut labels = Vec::new();
        let mut rest = rest.strip_suffix('}').expect("closing brace");
        while let Some((name, after)) = rest.split_once('=') {
            let mut end = 1;
            let b = after.as_bytes();
            while b[end] != b'"' {
                end += if b[end] == b'\\' { 2 } else { 1 };
            }
            labels.push((name.trim_start_matches([',', ' ']).to_string(), go_unquote(&after[..=end]).expect("quoted value")));
            rest = &after[end + 1..];
        }
        (metric.to_string(), labels)
    }

    fn yaml_scalar(v: &serde_yaml_ng::Value) -> String {
        match v {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            serde_yaml_ng::Value::Bool(b) => b.to_string(),
            other => panic!("not a scalar: {other:?}"),
        }
    }

    fn yaml_map(v: &serde_yaml_ng::Value) -> BTreeMap<String, String> {
        let Some(m) = v.as_mapping() else { return BTreeMap::new() };
        m.iter().map(|(k, v)| (yaml_scalar(k), yaml_scalar(v))).collect()
    }

    /// Renders every annotation and label of tests/templates/rules.yml over the input series of
    /// templates_test.yml and compares with the expectations there, which promtool checks.
    #[test]
    fn template_promtool_test_data() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/templates/");
        let load = |f: &str| -> serde_yaml_ng::Value {
            serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{dir}{f}")).expect("test data")).expect("yaml")
        };
        let (rules, test) = (load("rules.yml"), load("templates_test.yml"));
        let test = &test["tests"][0];
        assert_eq!(yaml_map(&test["external_labels"]), ext());
        assert_eq!(test["external_url"].as_str(), Some(URL));
        let series: Vec<_> = test["input_series"]
            .as_sequence()
            .expect("input_series")
            .iter()
            .map(|s| (parse_series(s["series"].as_str().expect("series")), yaml_scalar(&s["values"]).to_lowercase()))
            .collect();
        let mut checked = 0;
        for rule in rules["groups"][0]["rules"].as_sequence().expect("rules") {
            let alert = rule["alert"].as_str().expect("alert");
            let (rule_labels, annotations) = (yaml_map(&rule["labels"]), yaml_map(&rule["annotations"]));
            let name = format!("__alert_{alert}");
            let exp = test["alert_rule_test"]
                .as_sequence()
                .expect("tests")
                .iter()
                .find(|t| t["alertname"].as_str() == Some(alert))
                .expect("test");
            for e in exp["exp_alerts"].as_sequence().expect("exp_alerts") {
                let mut want_labels = yaml_map(&e["exp_labels"]);
                let want_ann = yaml_map(&e["exp_annotations"]);
                want_labels.remove("alertname");
                let series_labels: BTreeMap<String, String> =
                    want_labels.iter().filter(|(k, _)| !rule_labels.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect();
                let ((metric, labels), value) = series
                    .iter()
                    .find(|((m, l), _)| {
                        m == rule["expr"].as_str().unwrap_or("") && l.iter().cloned().collect::<BTreeMap<_, _>>() == series_labels
                    })
                    .expect("input series");
                let mut labels = labels.clone();
                labels.push(("__name__".into(), metric.clone()));
                let value: f64 = value.parse().expect("value");
                for (k, text) in &annotations {
                    assert_eq!(&render_with(&name, text, &labels, value), &want_ann[k], "{alert} {labels:?} annotation {k}");
                    checked += 1;
                }
                for (k, text) in &rule_labels {
                    assert_eq!(&render_with(&name, text, &labels, value), &want_labels[k], "{alert} {labels:?} label {k}");
                }
            }
        }
        assert!(checked > 400, "{checked}");
    }
}
