//! The authorization model as data: the JSON form of an OpenFGA schema 1.1 model.
//!
//! Field names and shapes follow OpenFGA's JSON exactly, so models written for OpenFGA
//! load unchanged. Maps keep their order so that JSON -> DSL prints relations in the
//! order the author wrote them.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A whole authorization model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuthorizationModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub schema_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub type_definitions: Vec<TypeDefinition>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub conditions: IndexMap<String, Condition>,
}

impl AuthorizationModel {
    /// The definition of `type_name`, if the model has one.
    pub fn type_def(&self, type_name: &str) -> Option<&TypeDefinition> {
        self.type_definitions
            .iter()
            .find(|t| t.type_name == type_name)
    }
}

/// One `type` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TypeDefinition {
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default)]
    pub relations: IndexMap<String, Userset>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

impl TypeDefinition {
    /// The types a relation may be assigned directly (its `[...]` restrictions).
    pub fn directly_related(&self, relation: &str) -> &[RelationReference] {
        self.metadata
            .as_ref()
            .and_then(|m| m.relations.get(relation))
            .map(|r| r.directly_related_user_types.as_slice())
            .unwrap_or(&[])
    }
}

/// Per-type metadata: the type restrictions of each relation, plus module / source info.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Metadata {
    #[serde(default)]
    pub relations: IndexMap<String, RelationMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// Which file a type, relation or condition came from (modular models).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SourceInfo {
    #[serde(default)]
    pub file: String,
}

/// Metadata of one relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RelationMetadata {
    #[serde(default)]
    pub directly_related_user_types: Vec<RelationReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// One entry of a type restriction: `user`, `user:*`, `group#member`, each optionally
/// `with condition`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct RelationReference {
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard: Option<Wildcard>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
}

impl RelationReference {
    pub fn is_wildcard(&self) -> bool {
        self.wildcard.is_some()
    }
}

/// The empty object `{}` that marks a wildcard restriction (`user:*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Wildcard {}

/// A relation's rewrite: how its set of users is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Userset {
    /// Direct assignment (`[user, group#member]`).
    #[serde(rename = "this")]
    This(Empty),
    /// Another relation on the same object (`viewer: editor`).
    #[serde(rename = "computedUserset")]
    Computed(ObjectRelation),
    /// `relation from tupleset` (`viewer from parent`).
    #[serde(rename = "tupleToUserset")]
    TupleToUserset(TupleToUserset),
    #[serde(rename = "union")]
    Union(Usersets),
    #[serde(rename = "intersection")]
    Intersection(Usersets),
    /// `base but not subtract`.
    #[serde(rename = "difference")]
    Difference(Difference),
}

/// The empty object `{}` of `this`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectRelation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default)]
    pub relation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TupleToUserset {
    pub tupleset: ObjectRelation,
    #[serde(rename = "computedUserset")]
    pub computed_userset: ObjectRelation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Usersets {
    #[serde(default)]
    pub child: Vec<Userset>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub base: Box<Userset>,
    pub subtract: Box<Userset>,
}

/// A named condition: typed parameters and a CEL expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Condition {
    pub name: String,
    pub expression: String,
    #[serde(default)]
    pub parameters: IndexMap<String, ConditionParamType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ConditionMetadata>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConditionMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// A condition parameter's type, e.g. `list<string>` is
/// `{type_name: TYPE_NAME_LIST, generic_types: [{type_name: TYPE_NAME_STRING}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionParamType {
    pub type_name: TypeName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generic_types: Vec<ConditionParamType>,
}

/// The parameter types OpenFGA conditions support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TypeName {
    #[serde(rename = "TYPE_NAME_ANY")]
    Any,
    #[serde(rename = "TYPE_NAME_BOOL")]
    Bool,
    #[serde(rename = "TYPE_NAME_STRING")]
    String,
    #[serde(rename = "TYPE_NAME_INT")]
    Int,
    #[serde(rename = "TYPE_NAME_UINT")]
    Uint,
    #[serde(rename = "TYPE_NAME_DOUBLE")]
    Double,
    #[serde(rename = "TYPE_NAME_DURATION")]
    Duration,
    #[serde(rename = "TYPE_NAME_TIMESTAMP")]
    Timestamp,
    #[serde(rename = "TYPE_NAME_MAP")]
    Map,
    #[serde(rename = "TYPE_NAME_LIST")]
    List,
    #[serde(rename = "TYPE_NAME_IPADDRESS")]
    IpAddress,
}

impl TypeName {
    /// The DSL spelling (`int`, `list`, `ipaddress`, ...).
    pub fn dsl_name(self) -> &'static str {
        match self {
            TypeName::Any => "any",
            TypeName::Bool => "bool",
            TypeName::String => "string",
            TypeName::Int => "int",
            TypeName::Uint => "uint",
            TypeName::Double => "double",
            TypeName::Duration => "duration",
            TypeName::Timestamp => "timestamp",
            TypeName::Map => "map",
            TypeName::List => "list",
            TypeName::IpAddress => "ipaddress",
        }
    }

    /// Parses the DSL spelling.
    pub fn from_dsl(name: &str) -> Option<TypeName> {
        Some(match name {
            "any" => TypeName::Any,
            "bool" => TypeName::Bool,
            "string" => TypeName::String,
            "int" => TypeName::Int,
            "uint" => TypeName::Uint,
            "double" => TypeName::Double,
            "duration" => TypeName::Duration,
            "timestamp" => TypeName::Timestamp,
            "map" => TypeName::Map,
            "list" => TypeName::List,
            "ipaddress" => TypeName::IpAddress,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openfga_json() -> Result<(), serde_json::Error> {
        let json = r#"{"schema_version":"1.1","type_definitions":[
            {"type":"user","relations":{},"metadata":null},
            {"type":"folder","relations":{
                "owner":{"union":{"child":[{"this":{}},{"tupleToUserset":{"tupleset":{"relation":"parent"},"computedUserset":{"relation":"owner"}}}]}},
                "parent":{"this":{}}},
             "metadata":{"relations":{"owner":{"directly_related_user_types":[{"type":"user"},{"type":"user","wildcard":{}}]},
                                       "parent":{"directly_related_user_types":[{"type":"folder"}]}}}}]}"#;
        let model: AuthorizationModel = serde_json::from_str(json)?;
        let folder = model.type_def("folder").map(|t| t.relations.len());
        assert_eq!(folder, Some(2));
        let restrictions = model.type_definitions[1].directly_related("owner");
        assert!(restrictions[1].is_wildcard());
        let back: AuthorizationModel = serde_json::from_str(&serde_json::to_string(&model)?)?;
        assert_eq!(back, model);
        Ok(())
    }
}
