//! The set of session ids under one index key (a subject, an email, an OP `sid`, a handle).
//! Nearly every key names one session, so one id is held inline and only more spill to a `Vec`.

use super::SessionId;

#[derive(Debug, Clone)]
pub(crate) enum Ids {
    One(SessionId),
    Many(Vec<SessionId>),
}

impl Ids {
    pub(crate) fn push(&mut self, id: SessionId) {
        match self {
            Ids::One(x) if *x == id => {}
            Ids::One(x) => *self = Ids::Many(vec![*x, id]),
            Ids::Many(v) if v.contains(&id) => {}
            Ids::Many(v) if v.is_empty() => *self = Ids::One(id),
            Ids::Many(v) => v.push(id),
        }
    }

    pub(crate) fn remove(&mut self, id: &SessionId) {
        match self {
            Ids::One(x) if x == id => *self = Ids::Many(Vec::new()),
            Ids::One(_) => {}
            Ids::Many(v) => {
                v.retain(|x| x != id);
                if let [only] = v[..] {
                    *self = Ids::One(only);
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Ids::Many(v) if v.is_empty())
    }

    pub(crate) fn as_slice(&self) -> &[SessionId] {
        match self {
            Ids::One(x) => std::slice::from_ref(x),
            Ids::Many(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SessionId {
        SessionId::from_bytes([n; 32])
    }

    #[test]
    fn ids_grow_shrink_and_deduplicate() {
        let mut s = Ids::One(id(1));
        s.push(id(1));
        assert_eq!(s.as_slice(), &[id(1)]);
        s.push(id(2));
        s.push(id(2));
        assert_eq!(s.as_slice(), &[id(1), id(2)]);
        s.remove(&id(1));
        assert!(matches!(s, Ids::One(x) if x == id(2)));
        s.remove(&id(3));
        assert!(!s.is_empty());
        s.remove(&id(2));
        assert!(s.is_empty());
        s.push(id(4));
        assert!(matches!(s, Ids::One(x) if x == id(4)));
    }
}
