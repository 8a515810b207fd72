//! Handles: what C holds instead of a pointer to a live object.
//!
//! A handle is a number shaped as a pointer: a slot index, the slot's generation and the kind of
//! object, never an address. Each call looks its handle up and holds the object (an `Arc`) until
//! it returns, so a free on another thread cannot pull memory from under a call in progress; and a
//! handle whose object was freed names a slot whose generation has moved on, so it is refused even
//! when a new object took the same slot. Nothing is ever read through the number C passes: a stale,
//! forged or mistyped handle is an error, not undefined behaviour.
//!
//! Lookups take one slot's lock (shared), so calls on different handles, or on the same one from
//! several threads, do not contend on a table-wide lock. Slots come in segments allocated as they
//! are first needed and kept for the life of the process.
//!
//! A slot keeps its object's pointer bitwise inverted, so that leak checkers (LeakSanitizer,
//! Valgrind), which look for pointers to a block, still report a client the application never
//! freed, as they would for any C library's object; the table is not a reference they can see.
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use super::{Failure, mqttc_status};

/// Bits of the slot index: up to 2^20 (about a million) live handles of one kind.
const INDEX_BITS: u32 = 20;
/// Bits naming the kind of object, so that a client's handle given as a loop is refused.
const KIND_BITS: u32 = 3;
/// The rest, below the top bit, count a slot's reuses: 36 bits on 64-bit targets, 8 on 32-bit
/// ones (where a stale handle is caught until its slot was reused 256 times).
const GENERATION_BITS: u32 = usize::BITS - 1 - KIND_BITS - INDEX_BITS;
/// Set in every handle: on 64-bit targets it makes the number a non-canonical address, so C code
/// that dereferences a handle by mistake faults at once instead of reading someone's memory.
const TAG: usize = 1 << (usize::BITS - 1);

const SEGMENT: usize = 1024;
const SEGMENTS: usize = (1 << INDEX_BITS) / SEGMENT;

struct Slot<T> {
    generation: usize,
    /// `!ptr` of a strong reference made by `Arc::into_raw`, or 0 when empty (see the module doc).
    hidden: usize,
    _owns: PhantomData<Arc<T>>,
}

impl<T> Slot<T> {
    fn hide(value: Arc<T>) -> usize {
        !Arc::into_raw(value).expose_provenance()
    }

    /// The object, with a strong reference of its own for the caller.
    fn get(&self) -> Option<Arc<T>> {
        let ptr = self.pointer()?;
        // SAFETY: the slot holds a strong reference made by `Arc::into_raw` (`hide`), which
        // cannot be released while the caller holds the slot's lock (shared here; `take` needs it
        // exclusively), so the count is at least 1 and `ptr` is live.
        unsafe {
            Arc::increment_strong_count(ptr);
            Some(Arc::from_raw(ptr))
        }
    }

    /// Takes the slot's own reference out, leaving it empty.
    fn take(&mut self) -> Option<Arc<T>> {
        let ptr = self.pointer()?;
        self.hidden = 0;
        // SAFETY: the reference `hide` made with `Arc::into_raw`, handed back exactly once (the
        // slot is empty from now on).
        Some(unsafe { Arc::from_raw(ptr) })
    }

    fn pointer(&self) -> Option<*const T> {
        (self.hidden != 0).then(|| std::ptr::with_exposed_provenance(!self.hidden))
    }
}

type Segment<T> = Box<[RwLock<Slot<T>>]>;

/// One kind of object's handles.
pub(crate) struct Handles<T> {
    kind: usize,
    segments: [OnceLock<Segment<T>>; SEGMENTS],
    /// Free slots, oldest first: reusing the longest-free slot makes a stale handle's generation
    /// repeat as late as possible.
    free: Mutex<Allocator>,
}

struct Allocator {
    free: VecDeque<usize>,
    /// Slots handed out so far; those past it have never been used.
    used: usize,
}

impl<T> Handles<T> {
    /// The object an argument from C names, held until the caller drops it: MQTTC_ERR_NULL for
    /// NULL, MQTTC_ERR_INVALID_HANDLE for a handle that is not a live `kind`. `name` is the
    /// argument's, for the message.
    pub(crate) fn arg<P>(&self, p: *const P, name: &str, kind: &str) -> Result<Arc<T>, Failure> {
        if p.is_null() {
            return Err(Failure::new(mqttc_status::MQTTC_ERR_NULL, format!("{name} is NULL")));
        }
        self.get(p.addr()).ok_or_else(|| {
            Failure::new(
                mqttc_status::MQTTC_ERR_INVALID_HANDLE,
                format!("{name} was freed or is not a {kind}"),
            )
        })
    }

    pub(crate) const fn new(kind: usize) -> Self {
        assert!(kind < 1 << KIND_BITS);
        Handles {
            kind,
            segments: [const { OnceLock::new() }; SEGMENTS],
            free: Mutex::new(Allocator {
                free: VecDeque::new(),
                used: 0,
            }),
        }
    }

    fn slot(&self, index: usize) -> Option<&RwLock<Slot<T>>> {
        self.segments.get(index / SEGMENT)?.get().map(|s| &s[index % SEGMENT])
    }

    fn encode(&self, index: usize, generation: usize) -> usize {
        TAG | (self.kind << (INDEX_BITS + GENERATION_BITS)) | (generation << INDEX_BITS) | index
    }

    /// Stores `value` and returns its handle (never 0), or `None` when every slot is taken.
    pub(crate) fn insert(&self, value: Arc<T>) -> Option<usize> {
        let mut alloc = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let index = match alloc.free.pop_front() {
            Some(i) => i,
            None if alloc.used < SEGMENT * SEGMENTS => {
                let i = alloc.used;
                self.segments[i / SEGMENT].get_or_init(|| {
                    (0..SEGMENT)
                        .map(|_| {
                            RwLock::new(Slot {
                                generation: 0,
                                hidden: 0,
                                _owns: PhantomData,
                            })
                        })
                        .collect()
                });
                alloc.used += 1;
                i
            }
            None => return None,
        };
        let slot = self.slot(index)?;
        let mut s = slot.write().unwrap_or_else(|p| p.into_inner());
        s.hidden = Slot::hide(value);
        Some(self.encode(index, s.generation))
    }

    /// Splits a handle into its slot and generation when it is one of ours.
    fn decode(&self, handle: usize) -> Option<(&RwLock<Slot<T>>, usize)> {
        let index = handle & ((1 << INDEX_BITS) - 1);
        let generation = (handle >> INDEX_BITS) & ((1 << GENERATION_BITS) - 1);
        if handle != self.encode(index, generation) {
            return None;
        }
        Some((self.slot(index)?, generation))
    }

    /// The object a handle names, held for the caller; `None` for a handle that is not one of
    /// ours or whose object was removed.
    pub(crate) fn get(&self, handle: usize) -> Option<Arc<T>> {
        let (slot, generation) = self.decode(handle)?;
        let s = slot.read().unwrap_or_else(|p| p.into_inner());
        if s.generation != generation {
            return None;
        }
        s.get()
    }

    /// Takes the object out: the handle is dead from now on. `None` when it already was (of
    /// several racing removes, one gets the object).
    pub(crate) fn remove(&self, handle: usize) -> Option<Arc<T>> {
        let (slot, generation) = self.decode(handle)?;
        let value = {
            let mut s = slot.write().unwrap_or_else(|p| p.into_inner());
            if s.generation != generation {
                return None;
            }
            let value = s.take()?;
            s.generation = (s.generation + 1) & ((1 << GENERATION_BITS) - 1);
            value
        };
        let index = handle & ((1 << INDEX_BITS) - 1);
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .free
            .push_back(index);
        Some(value)
    }
}

impl<T> Drop for Handles<T> {
    /// Only tables made in tests are ever dropped (the library's are statics).
    fn drop(&mut self) {
        for segment in self.segments.iter_mut().filter_map(OnceLock::get_mut) {
            for slot in segment.iter_mut() {
                drop(slot.get_mut().unwrap_or_else(|p| p.into_inner()).take());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_handle_is_refused_even_after_its_slot_is_reused() {
        let table = Handles::<u32>::new(1);
        let a = table.insert(Arc::new(1)).unwrap();
        assert_eq!(table.get(a).as_deref(), Some(&1));
        assert_eq!(table.remove(a).as_deref(), Some(&1));
        assert!(table.get(a).is_none());
        assert!(table.remove(a).is_none(), "a second remove finds nothing");
        // Only one slot was ever used, so the next insert reuses it with a new generation.
        let b = table.insert(Arc::new(2)).unwrap();
        assert_ne!(a, b);
        assert!(table.get(a).is_none());
        assert_eq!(table.get(b).as_deref(), Some(&2));
    }

    #[test]
    fn a_handle_of_another_kind_or_a_made_up_number_is_refused() {
        let clients = Handles::<u32>::new(1);
        let loops = Handles::<u32>::new(2);
        let c = clients.insert(Arc::new(7)).unwrap();
        let l = loops.insert(Arc::new(8)).unwrap();
        assert!(loops.get(c).is_none());
        assert!(clients.get(l).is_none());
        for forged in [0, 1, 8, c & !TAG, c + (1 << INDEX_BITS), usize::MAX] {
            assert!(clients.get(forged).is_none(), "{forged:#x}");
        }
    }

    #[test]
    fn the_table_holds_one_reference_and_gives_it_back_on_remove_or_drop() {
        let object = Arc::new(5u8);
        let table = Handles::<u8>::new(1);
        let h = table.insert(object.clone()).unwrap();
        let _kept = table.insert(object.clone()).unwrap();
        assert_eq!(Arc::strong_count(&object), 3);
        let got = table.get(h).unwrap();
        assert_eq!(Arc::strong_count(&object), 4);
        drop(got);
        drop(table.remove(h));
        assert_eq!(Arc::strong_count(&object), 2);
        drop(table);
        assert_eq!(Arc::strong_count(&object), 1, "the drop released what was left");
    }

    #[test]
    fn a_call_in_progress_keeps_its_object_after_the_remove() {
        let table = Handles::<String>::new(1);
        let h = table.insert(Arc::new("alive".into())).unwrap();
        let held = table.get(h).unwrap();
        let removed = table.remove(h).unwrap();
        drop(removed);
        assert_eq!(*held, "alive");
        assert_eq!(Arc::strong_count(&held), 1);
    }

    #[test]
    fn slots_fill_segments_in_order_and_are_reused_oldest_first() {
        let table = Handles::<usize>::new(1);
        let handles: Vec<usize> = (0..SEGMENT + 3).map(|i| table.insert(Arc::new(i)).unwrap()).collect();
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(table.get(*h).as_deref(), Some(&i));
        }
        table.remove(handles[5]).unwrap();
        table.remove(handles[2]).unwrap();
        let again = table.insert(Arc::new(99)).unwrap();
        assert_eq!(
            again & ((1 << INDEX_BITS) - 1),
            5,
            "the slot freed first is reused first"
        );
    }

    #[test]
    fn threads_racing_to_remove_one_handle_free_it_once() {
        let table = Arc::new(Handles::<u8>::new(1));
        for _ in 0..200 {
            let h = table.insert(Arc::new(0)).unwrap();
            let winners: usize = std::thread::scope(|s| {
                let racers: Vec<_> = (0..4).map(|_| s.spawn(|| table.remove(h).is_some())).collect();
                racers.into_iter().map(|r| r.join().unwrap() as usize).sum()
            });
            assert_eq!(winners, 1);
        }
    }
}
