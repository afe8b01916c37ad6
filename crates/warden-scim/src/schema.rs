//! The schemas Warden serves, as attribute definitions (RFC 7643 §4 and §8.7.1), and
//! the discovery documents built from them.

use std::sync::OnceLock;

use serde_json::{Value, json};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// An attribute's data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Binary,
    Complex,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Boolean => "boolean",
            Type::Decimal => "decimal",
            Type::Integer => "integer",
            Type::DateTime => "dateTime",
            Type::Reference => "reference",
            Type::Binary => "binary",
            Type::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
}

/// One attribute definition.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub unique: bool,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub: Vec<Attribute>,
    /// Sub-attributes clients may send that are accepted and dropped (derived, not
    /// stored), beyond those in `sub`.
    pub ignored: &'static [&'static str],
    pub description: &'static str,
}

impl Attribute {
    fn new(name: &'static str, ty: Type, description: &'static str) -> Attribute {
        Attribute {
            name,
            ty,
            multi: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            unique: false,
            canonical: &[],
            reference_types: &[],
            sub: Vec::new(),
            ignored: &[],
            description,
        }
    }
    fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    fn canonical(mut self, c: &'static [&'static str]) -> Self {
        self.canonical = c;
        self
    }
    fn refs(mut self, r: &'static [&'static str]) -> Self {
        self.reference_types = r;
        self
    }
    fn sub(mut self, s: Vec<Attribute>) -> Self {
        self.sub = s;
        self
    }
    fn ignores(mut self, names: &'static [&'static str]) -> Self {
        self.ignored = names;
        self
    }

    /// The sub-attribute named `name`, in any case.
    pub fn sub_attr(&self, name: &str) -> Option<&Attribute> {
        self.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.ty.as_str(),
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": match self.mutability {
                Mutability::ReadOnly => "readOnly",
                Mutability::ReadWrite => "readWrite",
                Mutability::Immutable => "immutable",
                Mutability::WriteOnly => "writeOnly",
            },
            "returned": match self.returned {
                Returned::Always => "always",
                Returned::Never => "never",
                Returned::Default => "default",
            },
            "uniqueness": if self.unique { "server" } else { "none" },
        });
        if !self.canonical.is_empty() {
            v["canonicalValues"] = json!(self.canonical);
        }
        if self.ty == Type::Reference {
            v["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub.is_empty() {
            v["subAttributes"] = Value::Array(self.sub.iter().map(Attribute::to_json).collect());
        }
        v
    }
}

/// A schema: its URN and attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: Vec<Attribute>,
}

impl Schema {
    /// The attribute named `name`, in any case.
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The `/Schemas/{id}` document.
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(Attribute::to_json).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", self.id)},
        })
    }
}

/// The resource types Warden serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    /// The resource type name (`User`), also the `meta.resourceType`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    /// The endpoint (`Users`).
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
    pub fn core(self) -> &'static Schema {
        match self {
            Kind::User => user(),
            Kind::Group => group(),
        }
    }
    /// Schema extensions this type may carry.
    pub fn extensions(self) -> &'static [&'static Schema] {
        static USER_EXT: OnceLock<[&'static Schema; 1]> = OnceLock::new();
        match self {
            Kind::User => USER_EXT.get_or_init(|| [enterprise_user()]),
            Kind::Group => &[],
        }
    }
    /// The extension with this URN (any case).
    pub fn extension(self, urn: &str) -> Option<&'static Schema> {
        self.extensions()
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The `/ResourceTypes/{name}` document.
    pub fn resource_type_json(self, base: &str) -> Value {
        let ext: Vec<Value> = self
            .extensions()
            .iter()
            .map(|s| json!({"schema": s.id, "required": false}))
            .collect();
        let mut v = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name(),
            "name": self.name(),
            "endpoint": format!("/{}", self.endpoint()),
            "description": match self { Kind::User => "User accounts", Kind::Group => "Groups" },
            "schema": self.core().id,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", self.name())},
        });
        if !ext.is_empty() {
            v["schemaExtensions"] = Value::Array(ext);
        }
        v
    }
}

/// The attributes every resource has (RFC 7643 §3.1).
fn common() -> Vec<Attribute> {
    use Mutability::*;
    vec![
        Attribute::new(
            "id",
            Type::String,
            "Identifier assigned by the service provider.",
        )
        .case_exact()
        .mutability(ReadOnly)
        .returned(Returned::Always)
        .unique(),
        Attribute::new(
            "externalId",
            Type::String,
            "Identifier assigned by the client.",
        )
        .case_exact(),
        Attribute::new("meta", Type::Complex, "Resource metadata.")
            .mutability(ReadOnly)
            .sub(vec![
                Attribute::new("resourceType", Type::String, "Resource type.")
                    .case_exact()
                    .mutability(ReadOnly),
                Attribute::new("created", Type::DateTime, "When it was created.")
                    .mutability(ReadOnly),
                Attribute::new("lastModified", Type::DateTime, "When it last changed.")
                    .mutability(ReadOnly),
                Attribute::new("location", Type::Reference, "Its URI.")
                    .case_exact()
                    .mutability(ReadOnly)
                    .refs(&["uri"]),
                Attribute::new("version", Type::String, "Its version (the ETag).")
                    .case_exact()
                    .mutability(ReadOnly),
            ]),
    ]
}

/// A multi-valued complex attribute with `value`, `display`, `type` and `primary`.
fn plural(
    name: &'static str,
    desc: &'static str,
    value: Attribute,
    types: &'static [&'static str],
) -> Attribute {
    Attribute::new(name, Type::Complex, desc).multi().sub(vec![
        value,
        Attribute::new("display", Type::String, "A label for display."),
        Attribute::new("type", Type::String, "The kind of value.").canonical(types),
        Attribute::new("primary", Type::Boolean, "The preferred value."),
    ])
}

pub fn user() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        use Mutability::*;
        let s = |n, d| Attribute::new(n, Type::String, d);
        let mut attributes = common();
        attributes.extend([
            s(
                "userName",
                "Unique name of the user, typically used to sign in.",
            )
            .required()
            .unique(),
            Attribute::new("name", Type::Complex, "The parts of the user's name.").sub(vec![
                s("formatted", "The full name."),
                s("familyName", "Family name."),
                s("givenName", "Given name."),
                s("middleName", "Middle name."),
                s("honorificPrefix", "Honorific prefix."),
                s("honorificSuffix", "Honorific suffix."),
            ]),
            s("displayName", "Name shown to people."),
            s("nickName", "Casual name."),
            Attribute::new("profileUrl", Type::Reference, "Online profile.").refs(&["external"]),
            s("title", "Job title."),
            s("userType", "Relationship to the organization."),
            s("preferredLanguage", "Preferred language."),
            s("locale", "Locale."),
            s("timezone", "Time zone (IANA name)."),
            Attribute::new(
                "active",
                Type::Boolean,
                "Whether the user may act (false suspends the user and revokes their tokens).",
            ),
            s("password", "Password; never returned.")
                .case_exact()
                .mutability(WriteOnly)
                .returned(Returned::Never),
            plural(
                "emails",
                "Email addresses.",
                s("value", "The address."),
                &["work", "home", "other"],
            ),
            plural(
                "phoneNumbers",
                "Phone numbers.",
                s("value", "The number."),
                &["work", "home", "mobile", "fax", "pager", "other"],
            ),
            plural(
                "ims",
                "Instant messaging addresses.",
                s("value", "The address."),
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
            ),
            plural(
                "photos",
                "Photos.",
                Attribute::new("value", Type::Reference, "URL of the photo.").refs(&["external"]),
                &["photo", "thumbnail"],
            ),
            Attribute::new("addresses", Type::Complex, "Postal addresses.")
                .multi()
                .sub(vec![
                    s("formatted", "The full address."),
                    s("streetAddress", "Street."),
                    s("locality", "City."),
                    s("region", "State or region."),
                    s("postalCode", "Postal code."),
                    s("country", "Country (ISO 3166-1 alpha-2)."),
                    s("type", "The kind of address.").canonical(&["work", "home", "other"]),
                    Attribute::new("primary", Type::Boolean, "The preferred address."),
                ]),
            Attribute::new(
                "groups",
                Type::Complex,
                "Groups the user belongs to (managed through Groups).",
            )
            .multi()
            .mutability(ReadOnly)
            .sub(vec![
                s("value", "The group's id.").mutability(ReadOnly),
                Attribute::new("$ref", Type::Reference, "The group's URI.")
                    .mutability(ReadOnly)
                    .refs(&["User", "Group"]),
                s("display", "The group's name.").mutability(ReadOnly),
                s("type", "direct or indirect.")
                    .mutability(ReadOnly)
                    .canonical(&["direct", "indirect"]),
            ]),
            plural(
                "entitlements",
                "Entitlements.",
                s("value", "The entitlement."),
                &[],
            ),
            plural("roles", "Roles.", s("value", "The role."), &[]),
            plural(
                "x509Certificates",
                "Certificates.",
                Attribute::new("value", Type::Binary, "DER certificate, base64."),
                &[],
            ),
        ]);
        Schema {
            id: USER,
            name: "User",
            description: "User Account",
            attributes,
        }
    })
}

pub fn enterprise_user() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        let s = |n, d| Attribute::new(n, Type::String, d);
        Schema {
            id: ENTERPRISE_USER,
            name: "EnterpriseUser",
            description: "Enterprise User",
            attributes: vec![
                s("employeeNumber", "Employee number."),
                s("costCenter", "Cost center."),
                s("organization", "Organization."),
                s("division", "Division."),
                s("department", "Department."),
                Attribute::new("manager", Type::Complex, "The user's manager.").sub(vec![
                    s("value", "The manager's id."),
                    Attribute::new("$ref", Type::Reference, "The manager's URI.").refs(&["User"]),
                    s("displayName", "The manager's name.").mutability(Mutability::ReadOnly),
                ]),
            ],
        }
    })
}

pub fn group() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        use Mutability::*;
        let mut attributes = common();
        attributes.extend([
            Attribute::new("displayName", Type::String, "Name of the group.").required(),
            Attribute::new(
                "members",
                Type::Complex,
                "Members: users and groups (stored as `group:<id>#member` tuples).",
            )
            .multi()
            // Identity providers send a member's display name; it is derived.
            .ignores(&["display"])
            .sub(vec![
                Attribute::new("value", Type::String, "The member's id.").mutability(Immutable),
                Attribute::new("$ref", Type::Reference, "The member's URI.")
                    .mutability(Immutable)
                    .refs(&["User", "Group"]),
                Attribute::new("type", Type::String, "User or Group.")
                    .mutability(Immutable)
                    .canonical(&["User", "Group"]),
            ]),
        ]);
        Schema {
            id: GROUP,
            name: "Group",
            description: "Group",
            attributes,
        }
    })
}

/// Every schema, for `/Schemas`.
pub fn all() -> [&'static Schema; 3] {
    [user(), group(), enterprise_user()]
}

/// The `/ServiceProviderConfig` document.
pub fn service_provider_config(base: &str, max_results: usize, max_payload: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/warden-authz/warden/blob/main/docs/scim.md",
        "patch": {"supported": true},
        // Bulk is not supported; its `maxPayloadSize` is the limit of any request body.
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": max_payload},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Directory bearer token",
            "description": "A Warden API key with the `directory` role, created by an organization administrator (sent as `Authorization: Bearer wdn_...`).",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}
