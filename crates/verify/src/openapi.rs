//! Compiles OpenAPI v3 schemas (CRD `openAPIV3Schema`, Kubernetes `components.schemas`) into an
//! arena of nodes the validator walks.
//!
//! Compiling once per schema is the point: patterns become `Regex`es and CEL rules become
//! parsed programs a single time, however many objects use them. `$ref`s (Kubernetes OpenAPI
//! only) are resolved into node ids, so recursive types are fine.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use kube_cel::cel;
use regex::Regex;
use serde_json::{Map, Value};

use crate::schemaset::celcode;

pub(crate) type NodeId = usize;

/// The JSON type a schema node declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Object => "object",
            Ty::Array => "array",
            Ty::String => "string",
            Ty::Integer => "integer",
            Ty::Number => "number",
            Ty::Boolean => "boolean",
        }
    }
}

/// String formats the validator checks (others are accepted as-is, like the API server does for
/// formats it does not know).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    None,
    DateTime,
    Duration,
    Byte,
    Uri,
    Ipv4,
    Ipv6,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Additional {
    /// Not given: no other keys allowed (structural schemas).
    #[default]
    Absent,
    /// `additionalProperties: true|false`.
    Bool(bool),
    Schema(NodeId),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ListType {
    #[default]
    Atomic,
    Set,
    Map,
}

/// One `x-kubernetes-validations` entry. Its CEL programs are parsed the first time the rule
/// is evaluated (most rules of a large CRD guard fields an object never sets), or read from the
/// schema digest's table of parsed rules when the schema came from one, then kept.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) rule: String,
    program: OnceLock<Result<Program, String>>,
    pub(crate) message: Option<String>,
    message_expression_text: Option<String>,
    message_expression: OnceLock<Option<Result<Program, String>>>,
    pub(crate) reason: Option<String>,
    pub(crate) field_path: Option<String>,
    pub(crate) transition: bool,
    pub(crate) optional_old_self: bool,
    parsed: Option<Arc<celcode::Table>>,
}

/// A parsed CEL expression (what `cel::Program` holds; `cel::Value::resolve` runs it).
pub(crate) type Program = cel::IdedExpr;

impl Rule {
    /// A rule as the compiler or a schema digest describes it; its programs are parsed (or read
    /// from `parsed`) on first use.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        rule: String,
        message: Option<String>,
        message_expression: Option<String>,
        reason: Option<String>,
        field_path: Option<String>,
        optional_old_self: bool,
        parsed: Option<Arc<celcode::Table>>,
    ) -> Rule {
        Rule {
            // A rule that mentions `oldSelf` is a transition rule (Kubernetes decides the same
            // from the compiled program; the text is enough and keeps compilation lazy).
            transition: rule.contains("oldSelf"),
            rule,
            program: OnceLock::new(),
            message,
            message_expression_text: message_expression,
            message_expression: OnceLock::new(),
            reason,
            field_path,
            optional_old_self,
            parsed,
        }
    }

    pub(crate) fn message_expression_text(&self) -> Option<&str> {
        self.message_expression_text.as_deref()
    }

    fn parse(&self, text: &str) -> Result<Program, String> {
        self.parsed
            .as_ref()
            .and_then(|t| t.get(text))
            .unwrap_or_else(|| celcode::parse(text))
    }

    /// The parsed rule, or why it does not parse.
    pub(crate) fn program(&self) -> Result<&Program, &str> {
        self.program
            .get_or_init(|| self.parse(&self.rule))
            .as_ref()
            .map_err(String::as_str)
    }

    /// The parsed `messageExpression`, if the rule has one.
    pub(crate) fn message_expression(&self) -> Option<Result<&Program, &str>> {
        self.message_expression
            .get_or_init(|| self.message_expression_text.as_ref().map(|e| self.parse(e)))
            .as_ref()
            .map(|r| r.as_ref().map_err(String::as_str))
    }
}

/// A `pattern`, compiled on first use.
#[derive(Debug)]
pub(crate) struct Pattern {
    pub(crate) text: String,
    re: OnceLock<Result<Regex, String>>,
}

impl Pattern {
    pub(crate) fn new(text: String) -> Pattern {
        Pattern {
            text,
            re: OnceLock::new(),
        }
    }

    pub(crate) fn regex(&self) -> Result<&Regex, &str> {
        self.re
            .get_or_init(|| Regex::new(&self.text).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }
}

#[derive(Debug)]
pub(crate) struct SchemaNode {
    pub(crate) ty: Option<Ty>,
    pub(crate) format: Format,
    pub(crate) nullable: bool,
    pub(crate) int_or_string: bool,
    pub(crate) preserve_unknown: bool,
    pub(crate) embedded: bool,
    pub(crate) enumeration: Vec<Value>,
    pub(crate) pattern: Option<Pattern>,
    pub(crate) min_length: Option<u64>,
    pub(crate) max_length: Option<u64>,
    pub(crate) min_items: Option<u64>,
    pub(crate) max_items: Option<u64>,
    pub(crate) min_properties: Option<u64>,
    pub(crate) max_properties: Option<u64>,
    pub(crate) minimum: Option<f64>,
    pub(crate) maximum: Option<f64>,
    pub(crate) exclusive_minimum: bool,
    pub(crate) exclusive_maximum: bool,
    pub(crate) multiple_of: Option<f64>,
    pub(crate) unique_items: bool,
    pub(crate) required: Vec<String>,
    pub(crate) properties: BTreeMap<String, NodeId>,
    pub(crate) additional: Additional,
    pub(crate) items: Option<NodeId>,
    pub(crate) all_of: Vec<NodeId>,
    pub(crate) any_of: Vec<NodeId>,
    pub(crate) one_of: Vec<NodeId>,
    pub(crate) not: Option<NodeId>,
    pub(crate) default: Option<Value>,
    pub(crate) list_type: ListType,
    pub(crate) list_map_keys: Vec<String>,
    pub(crate) rules: Vec<Rule>,
    /// This node or a node below it carries CEL rules (lets the CEL pass skip whole subtrees).
    pub(crate) rules_below: bool,
}

impl SchemaNode {
    pub(crate) fn empty() -> SchemaNode {
        SchemaNode {
            ty: None,
            format: Format::None,
            nullable: false,
            int_or_string: false,
            preserve_unknown: false,
            embedded: false,
            enumeration: Vec::new(),
            pattern: None,
            min_length: None,
            max_length: None,
            min_items: None,
            max_items: None,
            min_properties: None,
            max_properties: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: false,
            exclusive_maximum: false,
            multiple_of: None,
            unique_items: false,
            required: Vec::new(),
            properties: BTreeMap::new(),
            additional: Additional::Absent,
            items: None,
            all_of: Vec::new(),
            any_of: Vec::new(),
            one_of: Vec::new(),
            not: None,
            default: None,
            list_type: ListType::Atomic,
            list_map_keys: Vec::new(),
            rules: Vec::new(),
            rules_below: false,
        }
    }

    /// The `type` name the API server puts in `Invalid value: "<type>"` for rule failures.
    pub(crate) fn type_name(&self) -> &'static str {
        self.ty.map_or("", Ty::name)
    }
}

/// A compiled schema arena.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<SchemaNode>,
    /// Number of `x-kubernetes-validations` rules.
    pub(crate) rule_count: usize,
    /// Unresolved `$ref`s.
    pub(crate) compile_errors: Vec<String>,
}

impl Graph {
    pub(crate) fn node(&self, id: NodeId) -> &SchemaNode {
        &self.nodes[id]
    }

    /// Compiles every rule, message expression and pattern now; returns what does not compile.
    pub(crate) fn compile_everything(&self) -> Vec<String> {
        let mut errors = self.compile_errors.clone();
        for n in &self.nodes {
            for r in &n.rules {
                if let Err(e) = r.program() {
                    errors.push(format!("rule {:?}: {e}", r.rule));
                }
                if let Some(Err(e)) = r.message_expression() {
                    errors.push(format!("messageExpression of rule {:?}: {e}", r.rule));
                }
            }
            if let Some(p) = &n.pattern
                && let Err(e) = p.regex()
            {
                errors.push(format!("pattern {:?}: {e}", p.text));
            }
        }
        errors
    }
}

/// Where `#/components/schemas/<name>` refs resolve: a parsed document's map, or the schema
/// set's components, each parsed the first time a ref reaches it.
pub(crate) trait Components {
    fn component(&self, name: &str) -> Option<&Value>;
}

impl Components for Map<String, Value> {
    fn component(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// Compiles schemas into one graph. `components` resolves `#/components/schemas/<name>` refs.
pub(crate) struct Compiler<'a> {
    graph: Graph,
    components: Option<&'a dyn Components>,
    refs: HashMap<String, NodeId>,
    parsed: Option<Arc<celcode::Table>>,
}

impl<'a> Compiler<'a> {
    pub(crate) fn new(components: Option<&'a dyn Components>) -> Compiler<'a> {
        Compiler {
            graph: Graph::default(),
            components,
            refs: HashMap::new(),
            parsed: None,
        }
    }

    /// Rules take their parsed form from `table` when it has them (a verified schema digest's).
    pub(crate) fn with_parsed_rules(mut self, table: Option<Arc<celcode::Table>>) -> Self {
        self.parsed = table;
        self
    }

    /// Compiles `schema` (found at `path`, for messages) and returns its node id.
    pub(crate) fn add(&mut self, schema: &Value, path: &str) -> NodeId {
        self.node(schema, path)
    }

    /// Compiles `#/components/schemas/<name>`.
    pub(crate) fn add_component(&mut self, name: &str) -> NodeId {
        self.reference(name)
    }

    pub(crate) fn finish(mut self) -> Graph {
        mark_rules_below(&mut self.graph);
        self.graph
    }

    fn push(&mut self, node: SchemaNode) -> NodeId {
        self.graph.nodes.push(node);
        self.graph.nodes.len() - 1
    }

    fn node(&mut self, schema: &Value, path: &str) -> NodeId {
        if let Some(name) = ref_name(schema) {
            return self.reference(name);
        }
        // Kubernetes OpenAPI wraps references as `allOf: [{$ref}]` next to a description or a
        // default; the wrapper adds nothing the validator uses, so it collapses to the target.
        if let Some(all_of) = schema.get("allOf").and_then(Value::as_array)
            && all_of.len() == 1
            && schema.get("type").is_none()
            && schema.get("properties").is_none()
            && let Some(name) = ref_name(&all_of[0])
        {
            return self.reference(name);
        }
        let built = self.build(schema, path);
        self.push(built)
    }

    fn reference(&mut self, name: &str) -> NodeId {
        if let Some(&id) = self.refs.get(name) {
            return id;
        }
        let id = self.push(SchemaNode::empty());
        self.refs.insert(name.to_owned(), id);
        let target = self.components.and_then(|c| c.component(name));
        match target {
            Some(target) => {
                let built = self.build(target, name);
                self.graph.nodes[id] = built;
            }
            None => self
                .graph
                .compile_errors
                .push(format!("{name}: unresolved $ref")),
        }
        id
    }

    fn build(&mut self, s: &Value, path: &str) -> SchemaNode {
        let mut n = SchemaNode::empty();
        let Some(obj) = s.as_object() else {
            return n;
        };
        n.ty = match obj.get("type").and_then(Value::as_str) {
            Some("object") => Some(Ty::Object),
            Some("array") => Some(Ty::Array),
            Some("string") => Some(Ty::String),
            Some("integer") => Some(Ty::Integer),
            Some("number") => Some(Ty::Number),
            Some("boolean") => Some(Ty::Boolean),
            _ => None,
        };
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool) == Some(true);
        n.nullable = flag("nullable");
        n.int_or_string = flag("x-kubernetes-int-or-string")
            || obj.get("format").and_then(Value::as_str) == Some("int-or-string");
        n.preserve_unknown = flag("x-kubernetes-preserve-unknown-fields");
        n.embedded = flag("x-kubernetes-embedded-resource");
        n.unique_items = flag("uniqueItems");
        n.exclusive_minimum = flag("exclusiveMinimum");
        n.exclusive_maximum = flag("exclusiveMaximum");
        n.format = match obj.get("format").and_then(Value::as_str) {
            Some("date-time") => Format::DateTime,
            Some("duration") => Format::Duration,
            Some("byte") => Format::Byte,
            Some("uri") => Format::Uri,
            Some("ipv4") => Format::Ipv4,
            Some("ipv6") => Format::Ipv6,
            _ => Format::None,
        };
        if let Some(values) = obj.get("enum").and_then(Value::as_array) {
            n.enumeration = values.clone();
        }
        if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
            n.pattern = Some(Pattern {
                text: p.to_owned(),
                re: OnceLock::new(),
            });
        }
        let uint = |k: &str| obj.get(k).and_then(Value::as_u64);
        n.min_length = uint("minLength");
        n.max_length = uint("maxLength");
        n.min_items = uint("minItems");
        n.max_items = uint("maxItems");
        n.min_properties = uint("minProperties");
        n.max_properties = uint("maxProperties");
        n.minimum = obj.get("minimum").and_then(Value::as_f64);
        n.maximum = obj.get("maximum").and_then(Value::as_f64);
        n.multiple_of = obj.get("multipleOf").and_then(Value::as_f64);
        if let Some(req) = obj.get("required").and_then(Value::as_array) {
            n.required = req
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        n.default = obj.get("default").cloned();
        n.list_type = match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map,
            _ => ListType::Atomic,
        };
        if let Some(keys) = obj
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
        {
            n.list_map_keys = keys
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let id = self.node(sub, &format!("{path}.{name}"));
                n.properties.insert(name.clone(), id);
            }
        }
        n.additional = match obj.get("additionalProperties") {
            None => Additional::Absent,
            Some(Value::Bool(b)) => Additional::Bool(*b),
            Some(sub) => Additional::Schema(self.node(sub, &format!("{path}[*]"))),
        };
        if let Some(items) = obj.get("items") {
            n.items = Some(self.node(items, &format!("{path}[*]")));
        }
        for (key, dest) in [
            ("allOf", &mut n.all_of),
            ("anyOf", &mut n.any_of),
            ("oneOf", &mut n.one_of),
        ] {
            if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                for (i, b) in branches.iter().enumerate() {
                    dest.push(self.node(b, &format!("{path}({key}[{i}])")));
                }
            }
        }
        if let Some(not) = obj.get("not") {
            n.not = Some(self.node(not, &format!("{path}(not)")));
        }
        if let Some(rules) = obj
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            for raw in rules {
                let rule = self.rule(raw);
                n.rules.push(rule);
            }
        }
        n
    }

    fn rule(&mut self, raw: &Value) -> Rule {
        self.graph.rule_count += 1;
        let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
        Rule::new(
            text("rule").unwrap_or_default(),
            text("message"),
            text("messageExpression"),
            text("reason"),
            text("fieldPath"),
            raw.get("optionalOldSelf").and_then(Value::as_bool) == Some(true),
            self.parsed.clone(),
        )
    }
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

/// Sets `rules_below` on every node that has rules or reaches a node that has (a fixpoint, since
/// Kubernetes OpenAPI graphs may be cyclic).
fn mark_rules_below(graph: &mut Graph) {
    for n in &mut graph.nodes {
        n.rules_below = !n.rules.is_empty();
    }
    loop {
        let mut changed = false;
        for i in 0..graph.nodes.len() {
            if graph.nodes[i].rules_below {
                continue;
            }
            let n = &graph.nodes[i];
            let mut children = n.properties.values().copied().collect::<Vec<_>>();
            children.extend(n.items);
            if let Additional::Schema(a) = n.additional {
                children.push(a);
            }
            children.extend(n.all_of.iter().chain(&n.any_of).chain(&n.one_of));
            if children.iter().any(|&c| graph.nodes[c].rules_below) {
                graph.nodes[i].rules_below = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_resolve_and_cycles_terminate() {
        let components = json!({
            "A": {"type": "object", "properties": {"self": {"allOf": [{"$ref": "#/components/schemas/A"}], "default": {}}}},
        });
        let map = components.as_object().expect("object");
        let mut c = Compiler::new(Some(map));
        let root = c.add_component("A");
        let g = c.finish();
        let a = g.node(root);
        assert_eq!(a.ty, Some(Ty::Object));
        assert_eq!(a.properties["self"], root);
    }

    #[test]
    fn rules_are_compiled_once_and_marked_upwards() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.a == 1", "message": "m"}, {"rule": "self.a ==", "message": "broken"}]}}});
        let mut c = Compiler::new(None);
        let root = c.add(&s, "");
        let g = c.finish();
        assert_eq!(g.rule_count, 2);
        assert!(g.node(root).rules_below);
        let spec = g.node(root).properties["spec"];
        assert!(g.node(spec).rules[0].program().is_ok());
        assert!(g.node(spec).rules[1].program().is_err());
        assert_eq!(g.compile_everything().len(), 1);
    }
}
