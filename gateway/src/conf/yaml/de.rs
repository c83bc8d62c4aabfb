//! A `serde::Deserializer` over the marked node tree.
//!
//! Every error leaves here tagged with the failing node's position and path, and unknown keys of
//! structs are recorded in the [`Ctx`] and skipped, so one pass reports them all.

use super::error::{At, Error};
use super::message::{closest, describe, one_of, resolve, Scalar};
use super::path::{Seg, Trail};
use super::tree::{Entry, Item, Kind, Node};
use serde::de::{self, DeserializeSeed, Visitor};
use std::cell::RefCell;

/// State shared by one deserialization run.
#[derive(Default)]
pub(super) struct Ctx {
    /// Unknown struct fields: reported, skipped, and not fatal.
    pub unknown: RefCell<Vec<Error>>,
    /// (map path, field) for unknown keys that look like a typo of that field: a "missing
    /// field" error for it would only repeat the unknown-key error.
    pub typos: RefCell<Vec<(Vec<Seg>, &'static str)>>,
}

#[derive(Clone, Copy)]
pub(super) struct De<'a> {
    node: &'a Node,
    trail: &'a Trail<'a>,
    ctx: &'a Ctx,
    /// Map keys and enum tags: `deserialize_any` reads them as strings whatever they look like.
    key: bool,
}

impl<'a> De<'a> {
    pub fn new(node: &'a Node, trail: &'a Trail<'a>, ctx: &'a Ctx) -> Self {
        De {
            node,
            trail,
            ctx,
            key: false,
        }
    }

    fn key(node: &'a Node, trail: &'a Trail<'a>, ctx: &'a Ctx) -> Self {
        De {
            node,
            trail,
            ctx,
            key: true,
        }
    }

    fn at(&self) -> At {
        At {
            loc: self.node.loc,
            path: self.trail.segs(),
        }
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            missing_field: None,
            at: Some(self.at()),
        }
    }

    /// Attributes an error made by a `Deserialize` impl to this node, unless a deeper node
    /// already claimed it.
    fn locate(&self, mut e: Error) -> Error {
        if e.at.is_none() {
            e.at = Some(self.at());
        }
        e
    }

    /// Runs a `Deserialize` impl on this node. Errors it makes after our methods returned
    /// (an untagged enum's "did not match any variant") are attributed to this node too.
    pub fn seed<'de, S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self).map_err(|e| self.locate(e))
    }

    fn run<T>(self, f: impl FnOnce(Self) -> Result<T, Error>) -> Result<T, Error> {
        f(self).map_err(|e| self.locate(e))
    }

    /// "expected {what}, found {this node}".
    fn mismatch(&self, what: &str) -> Error {
        self.error(format!("expected {what}, found {}", describe(self.node)))
    }

    /// Like `mismatch`, for numbers and booleans, which stop being either when quoted.
    fn mismatch_plain(&self, what: &str) -> Error {
        let mut e = self.mismatch(what);
        if let Kind::Scalar { text, plain: false } = &self.node.kind {
            if !matches!(resolve(text, true), Scalar::Str(_) | Scalar::Null) {
                e.message.push_str(" (quoted, so it is a string)");
            }
        }
        e
    }

    fn scalar(&self) -> Option<Scalar<'a>> {
        match &self.node.kind {
            Kind::Scalar { text, plain } => Some(resolve(text, *plain)),
            Kind::Seq(_) | Kind::Map(_) => None,
        }
    }

    fn text(&self) -> Option<&'a str> {
        match &self.node.kind {
            Kind::Scalar { text, .. } => Some(text),
            Kind::Seq(_) | Kind::Map(_) => None,
        }
    }

    fn is_null(&self) -> bool {
        !self.key && matches!(self.scalar(), Some(Scalar::Null))
    }

    fn int(&self, min: i128, max: i128) -> Result<i128, Error> {
        match self.scalar() {
            Some(Scalar::Int(n)) if (min..=max).contains(&n) => Ok(n),
            Some(Scalar::Int(_)) => Err(self.mismatch(&format!("an integer from {min} to {max}"))),
            _ => Err(self.mismatch_plain("an integer")),
        }
    }

    fn float(&self) -> Result<f64, Error> {
        match self.scalar() {
            Some(Scalar::Float(f)) => Ok(f),
            // Integers convert to the nearest float, as YAML readers expect.
            Some(Scalar::Int(n)) => Ok(n as f64),
            _ => Err(self.mismatch_plain("a number")),
        }
    }

    fn seq<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        what: &str,
        len: Option<usize>,
    ) -> Result<V::Value, Error> {
        let Kind::Seq(items) = &self.node.kind else {
            return Err(self.mismatch(what));
        };
        let mut access = SeqAcc {
            items: items.iter(),
            trail: self.trail,
            ctx: self.ctx,
        };
        let value = visitor.visit_seq(&mut access)?;
        let left = access.items.len();
        if left > 0 {
            let wanted = len.unwrap_or(items.len() - left);
            return Err(self.error(format!(
                "expected a list of {wanted} items, found {} items",
                items.len()
            )));
        }
        Ok(value)
    }

    fn map<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        fields: Option<&'static [&'static str]>,
    ) -> Result<V::Value, Error> {
        match &self.node.kind {
            Kind::Map(entries) => visitor.visit_map(MapAcc {
                entries: entries.iter(),
                value: None,
                trail: self.trail,
                ctx: self.ctx,
                fields,
            }),
            _ => Err(self.mismatch("a map")),
        }
    }
}

macro_rules! integer {
    ($method:ident, $visit:ident, $ty:ty, $max:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.run(|de| {
                let n = de.int(<$ty>::MIN as i128, $max)?;
                // `int` checked that `n` fits.
                visitor.$visit(n as $ty)
            })
        }
    };
    ($method:ident, $visit:ident, $ty:ty) => {
        integer!($method, $visit, $ty, <$ty>::MAX as i128);
    };
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| match &de.node.kind {
            Kind::Map(_) => de.map(visitor, None),
            Kind::Seq(_) => de.seq(visitor, "a list", None),
            Kind::Scalar { text, .. } if de.key => visitor.visit_str(text),
            Kind::Scalar { text, plain } => match resolve(text, *plain) {
                Scalar::Null => visitor.visit_unit(),
                Scalar::Bool(b) => visitor.visit_bool(b),
                Scalar::Int(n) => {
                    if let Ok(u) = u64::try_from(n) {
                        visitor.visit_u64(u)
                    } else if let Ok(i) = i64::try_from(n) {
                        visitor.visit_i64(i)
                    } else if let Ok(u) = u128::try_from(n) {
                        visitor.visit_u128(u)
                    } else {
                        visitor.visit_i128(n)
                    }
                }
                Scalar::Float(f) => visitor.visit_f64(f),
                Scalar::Str(s) => visitor.visit_str(s),
            },
        })
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| match de.scalar() {
            Some(Scalar::Bool(b)) => visitor.visit_bool(b),
            _ => Err(de.mismatch_plain("`true` or `false`")),
        })
    }

    integer!(deserialize_i8, visit_i8, i8);
    integer!(deserialize_i16, visit_i16, i16);
    integer!(deserialize_i32, visit_i32, i32);
    integer!(deserialize_i64, visit_i64, i64);
    integer!(deserialize_i128, visit_i128, i128);
    integer!(deserialize_u8, visit_u8, u8);
    integer!(deserialize_u16, visit_u16, u16);
    integer!(deserialize_u32, visit_u32, u32);
    integer!(deserialize_u64, visit_u64, u64);
    // Beyond i128::MAX a plain scalar is not read as an integer anyway.
    integer!(deserialize_u128, visit_u128, u128, i128::MAX);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| visitor.visit_f32(de.float()? as f32))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| visitor.visit_f64(de.float()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| {
            let mut chars = de.text().unwrap_or_default().chars();
            match (de.text(), chars.next(), chars.next()) {
                (Some(_), Some(c), None) => visitor.visit_char(c),
                _ => Err(de.mismatch("a single character")),
            }
        })
    }

    /// Any scalar reads as its source text, so `port: 8080` fills a String and `version: 1.10`
    /// keeps its trailing zero. A bare `key:` is refused: an empty string is written `""`.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| match de.text() {
            Some("") if de.is_null() => Err(de.mismatch("a string")),
            Some(text) => visitor.visit_str(text),
            None => Err(de.mismatch("a string")),
        })
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| match de.text() {
            Some(text) => visitor.visit_bytes(text.as_bytes()),
            None => de.seq(visitor, "a string", None),
        })
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| {
            if de.is_null() {
                visitor.visit_none()
            } else {
                visitor.visit_some(de)
            }
        })
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| {
            if de.is_null() {
                visitor.visit_unit()
            } else {
                Err(de.mismatch("an empty value"))
            }
        })
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.run(|de| visitor.visit_newtype_struct(de))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| de.seq(visitor, "a list", None))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| de.seq(visitor, &format!("a list of {len} items"), Some(len)))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| de.map(visitor, None))
    }

    /// Keys not in `fields` are reported in the context and skipped, so derived impls never see
    /// them (their own `deny_unknown_fields` check stays silent and nothing is reported twice).
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.run(|de| de.map(visitor, Some(fields)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.run(|de| {
            let found = match &de.node.kind {
                Kind::Scalar { .. } if !de.is_null() => {
                    return visitor.visit_enum(EnumAcc {
                        tag: de.node,
                        value: None,
                        trail: de.trail,
                        ctx: de.ctx,
                    })
                }
                Kind::Map(entries) if entries.len() == 1 => {
                    let entry = &entries[0];
                    return visitor.visit_enum(EnumAcc {
                        tag: &entry.key,
                        value: Some(&entry.value),
                        trail: de.trail,
                        ctx: de.ctx,
                    });
                }
                Kind::Map(entries) if entries.len() > 1 => {
                    format!("a map with {} keys", entries.len())
                }
                _ => describe(de.node),
            };
            Err(de.error(format!(
                "expected {}, alone or as the single key of a map, found {found}",
                one_of(variants)
            )))
        })
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.run(|de| match de.text() {
            Some(text) => visitor.visit_str(text),
            None => Err(de.mismatch("a name")),
        })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct SeqAcc<'a> {
    items: std::slice::Iter<'a, Item>,
    trail: &'a Trail<'a>,
    ctx: &'a Ctx,
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let trail = Trail::Index(self.trail, item.index);
        De::new(&item.node, &trail, self.ctx).seed(seed).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAcc<'a> {
    entries: std::slice::Iter<'a, Entry>,
    value: Option<&'a Entry>,
    trail: &'a Trail<'a>,
    ctx: &'a Ctx,
    /// A struct's field names: other keys are unknown.
    fields: Option<&'static [&'static str]>,
}

impl<'de> de::MapAccess<'de> for MapAcc<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for entry in self.entries.by_ref() {
            let key = entry.key_text();
            let trail = Trail::Key(self.trail, key);
            if let Some(fields) = self.fields {
                if !fields.contains(&key) {
                    if let Some(field) = closest(key, fields) {
                        self.ctx.typos.borrow_mut().push((self.trail.segs(), field));
                    }
                    self.ctx.unknown.borrow_mut().push(Error {
                        message: Error::unknown_field_message(key, fields),
                        missing_field: None,
                        at: Some(At {
                            loc: entry.key.loc,
                            path: trail.segs(),
                        }),
                    });
                    continue;
                }
            }
            self.value = Some(entry);
            return De::key(&entry.key, &trail, self.ctx).seed(seed).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some(entry) = self.value.take() else {
            return Err(Error::new("a map value was read before its key"));
        };
        let trail = Trail::Key(self.trail, entry.key_text());
        De::new(&entry.value, &trail, self.ctx).seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAcc<'a> {
    /// The scalar naming the variant: the whole node, or the single key of a map.
    tag: &'a Node,
    value: Option<&'a Node>,
    trail: &'a Trail<'a>,
    ctx: &'a Ctx,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumAcc<'a> {
    type Error = Error;
    type Variant = VariantAcc<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantAcc<'a>), Error> {
        let variant = De::key(self.tag, self.trail, self.ctx).seed(seed)?;
        Ok((
            variant,
            VariantAcc {
                tag: self.tag,
                value: self.value,
                trail: self.trail,
                ctx: self.ctx,
            },
        ))
    }
}

struct VariantAcc<'a> {
    tag: &'a Node,
    value: Option<&'a Node>,
    trail: &'a Trail<'a>,
    ctx: &'a Ctx,
}

impl<'a> VariantAcc<'a> {
    fn name(&self) -> &'a str {
        match &self.tag.kind {
            Kind::Scalar { text, .. } => text,
            Kind::Seq(_) | Kind::Map(_) => "",
        }
    }

    /// Runs `f` on the variant's settings, or explains that they are missing.
    fn settings<T>(self, f: impl FnOnce(De<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let name = self.name();
        match self.value {
            Some(value) => {
                let trail = Trail::Key(self.trail, name);
                let de = De::new(value, &trail, self.ctx);
                f(de).map_err(|e| de.locate(e))
            }
            None => Err(De::new(self.tag, self.trail, self.ctx).error(format!(
                "`{name}` needs settings: write it as a map `{name}: …`"
            ))),
        }
    }
}

impl<'de> de::VariantAccess<'de> for VariantAcc<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        let name = self.name();
        match self.value {
            None => Ok(()),
            Some(value) => {
                let trail = Trail::Key(self.trail, name);
                let de = De::new(value, &trail, self.ctx);
                if de.is_null() {
                    Ok(())
                } else {
                    Err(de.error(format!(
                        "`{name}` takes no settings, found {}",
                        describe(value)
                    )))
                }
            }
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        self.settings(|de| de.seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.settings(|de| de::Deserializer::deserialize_tuple(de, len, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.settings(|de| de::Deserializer::deserialize_struct(de, "", fields, visitor))
    }
}
