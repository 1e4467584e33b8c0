// bbolt-bench: the storage work of benches/src/engines.rs done on bbolt,
// etcd's backend store, timed with the scheme of the Rust binary
// keel-engine-vs-bbolt (which runs this program and compares). Prints one
// JSON line per operation:
//
//	{"op":"put_1000/memory","ns_per_iter":123,"iters":350,"rounds":7}
//
// and first a line {"options":"..."} naming the bbolt options used.
//
// Build (benches/bbolt.sh does this) with Debian's golang-go and
// golang-github-coreos-bbolt-dev, in GOPATH mode, nothing downloaded:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o bbolt-bench main.go
//
// Files go to a temporary directory under $TMPDIR, removed at exit.
//
// What each operation does (the redb column of engines.rs, on bbolt):
//
//   - put_1000/{memory,fsync}: one Update tx of 1000 Puts overwriting a
//     window of a 100k-key bucket (windows move by 1000 keys); memory sets
//     db.NoSync (no fsync), fsync leaves it false (bbolt's default: the
//     commit writes pages, fdatasync, meta page, fdatasync).
//   - get_100: one View tx of 100 Gets spread over the store, each value
//     copied out.
//   - range_1000: one View tx, a cursor Seek to the first key, then Next
//     until the end key: 1000 keys and values copied out.
//   - compact_10k/{memory,fsync}: a bucket holding 10k keys at two
//     revisions each, as key ++ (MaxUint64 - revision) big-endian (a key's
//     newest row first); one Update tx walks it with a cursor, collects
//     every row whose key equals the row before it (the older revision)
//     and deletes them. Deleting after the walk, not under the cursor,
//     since deleting under a bbolt cursor can skip the next row.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The same sizes as engines.rs.
const (
	storeKeys      = 100000
	batchKeys      = 1000
	pointGets      = 100
	valueBytes     = 256
	compactKeys    = 10000
	fillBatchKeys  = 10000
	putMemoryIters = 50
	putFsyncIters  = 20
	getIters       = 1000
	rangeIters     = 200
)

// etcd's own bbolt settings (server/storage/backend, etcd 3.5 and later,
// Linux, default flags): a 10 GiB initial mmap (readers never wait for a
// remap), MAP_POPULATE, no freelist written to disk, the hashmap freelist
// (etcd 3.4 defaulted to the array one), NoSync and NoGrowSync false
// (etcd sets them only with --unsafe-no-fsync), no mlock. etcd also
// batches many requests per bbolt commit; here, as on keel's side, one
// batch of 1000 puts is one commit.
var etcdOptions = bolt.Options{
	InitialMmapSize: 10 << 30,
	MmapFlags:       syscall.MAP_POPULATE,
	NoFreelistSync:  true,
	FreelistType:    bolt.FreelistMapType,
}

const optionsText = "InitialMmapSize=10GiB MmapFlags=MAP_POPULATE NoFreelistSync=true FreelistType=hashmap NoGrowSync=false Mlock=false; NoSync=true for */memory commits, false for */fsync"

var (
	kvBucket      = []byte("kv")
	historyBucket = []byte("history")
	// sink keeps results alive so the compiler cannot drop the reads.
	sink int
)

func key(index int) []byte { return []byte(fmt.Sprintf("key/%08d", index)) }

func value() []byte {
	v := make([]byte, valueBytes)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}

func keyRange(first, count int) [][]byte {
	keys := make([][]byte, count)
	for i := range keys {
		keys[i] = key(first + i)
	}
	return keys
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

type engine struct {
	db       *bolt.DB
	revision uint64
}

var workDir string
var opened int

func open() *engine {
	opened++
	options := etcdOptions
	db, err := bolt.Open(filepath.Join(workDir, fmt.Sprintf("bolt-%d.db", opened)), 0o600, &options)
	must(err)
	return &engine{db: db}
}

func (e *engine) close() {
	path := e.db.Path()
	must(e.db.Close())
	must(os.Remove(path))
}

func (e *engine) setSync(fsync bool) { e.db.NoSync = !fsync }

// filled: keys 0..keys put once, in Update txs of fillBatchKeys, synced.
func filled(keys int) *engine {
	e := open()
	v := value()
	e.setSync(false)
	for first := 0; first < keys; first += fillBatchKeys {
		n := fillBatchKeys
		if keys-first < n {
			n = keys - first
		}
		e.putBatch(keyRange(first, n), v, false)
	}
	must(e.db.Sync())
	return e
}

// withHistory: keys 0..keys at two revisions each in the history bucket.
func withHistory(keys int) *engine {
	e := open()
	v := value()
	e.setSync(false)
	for r := 0; r < 2; r++ {
		e.revision++
		suffix := make([]byte, 8)
		binary.BigEndian.PutUint64(suffix, math.MaxUint64-e.revision)
		must(e.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(historyBucket)
			if err != nil {
				return err
			}
			for i := 0; i < keys; i++ {
				row := append(key(i), suffix...)
				if err := b.Put(row, v); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	must(e.db.Sync())
	return e
}

func (e *engine) putBatch(keys [][]byte, v []byte, fsync bool) {
	e.setSync(fsync)
	must(e.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kvBucket)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	}))
}

func (e *engine) getMany(keys [][]byte) int {
	read := 0
	must(e.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(kvBucket)
		for _, k := range keys {
			v := b.Get(k)
			if v == nil {
				return fmt.Errorf("missing key %s", k)
			}
			owned := append([]byte(nil), v...)
			read += len(owned)
			sink += int(owned[0])
		}
		return nil
	}))
	return read
}

type row struct{ key, value []byte }

func (e *engine) rangeScan(start, end []byte) int {
	var rows []row
	must(e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(kvBucket).Cursor()
		for k, v := c.Seek(start); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			rows = append(rows, row{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		return nil
	}))
	sink += len(rows[len(rows)-1].value)
	return len(rows)
}

func (e *engine) compact(fsync bool) int {
	e.setSync(fsync)
	removed := 0
	must(e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(historyBucket)
		var superseded [][]byte
		var newest []byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			user := k[:len(k)-8]
			if bytes.Equal(user, newest) {
				superseded = append(superseded, append([]byte(nil), k...))
			} else {
				newest = append(newest[:0], user...)
			}
		}
		for _, k := range superseded {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		removed = len(superseded)
		return nil
	}))
	return removed
}

// The timing scheme, the same as keel-engine-vs-bbolt's: one untimed
// warm-up round, then up to `rounds` rounds of a fixed number of
// iterations, stopping early (after at least one round) once the
// operation has taken `maxSecs` of wall time; the result is the median
// round's time per iteration.
var (
	rounds  = flag.Int("rounds", 7, "measured rounds per operation")
	maxSecs = flag.Float64("max-secs", 10, "wall-time cap per operation, seconds (at least one round runs)")
	only    = flag.String("only", "", "run only this operation (e.g. get_100)")
)

// measure runs round(), which returns the time its iterations took, as
// the scheme says, and prints the result line for op.
func measure(op string, itersPerRound int, round func() time.Duration) {
	if *only != "" && *only != op {
		return
	}
	started := time.Now()
	round() // warm-up
	var perIter []float64
	for len(perIter) < *rounds {
		elapsed := round()
		perIter = append(perIter, float64(elapsed.Nanoseconds())/float64(itersPerRound))
		if time.Since(started).Seconds() > *maxSecs {
			break
		}
	}
	sort.Float64s(perIter)
	median := perIter[len(perIter)/2]
	if len(perIter)%2 == 0 {
		median = (perIter[len(perIter)/2-1] + perIter[len(perIter)/2]) / 2
	}
	fmt.Printf("{\"op\":%q,\"ns_per_iter\":%.0f,\"iters\":%d,\"rounds\":%d}\n",
		op, median, len(perIter)*itersPerRound, len(perIter))
}

func putBatches(op string, fsync bool, iters int) {
	if *only != "" && *only != op {
		return
	}
	windows := make([][][]byte, storeKeys/batchKeys)
	for w := range windows {
		windows[w] = keyRange(w*batchKeys, batchKeys)
	}
	v := value()
	e := filled(storeKeys)
	defer e.close()
	next := 0
	measure(op, iters, func() time.Duration {
		var elapsed time.Duration
		for i := 0; i < iters; i++ {
			keys := windows[next%len(windows)]
			next++
			start := time.Now()
			e.putBatch(keys, v, fsync)
			elapsed += time.Since(start)
		}
		// Untimed, as the Rust side's trim: make NoSync commits durable.
		must(e.db.Sync())
		return elapsed
	})
}

func reads() {
	if *only != "" && *only != "get_100" && *only != "range_1000" {
		return
	}
	e := filled(storeKeys)
	defer e.close()
	keys := make([][]byte, pointGets)
	for i := range keys {
		keys[i] = key(i*(storeKeys/pointGets) + 7)
	}
	measure("get_100", getIters, func() time.Duration {
		start := time.Now()
		for i := 0; i < getIters; i++ {
			if e.getMany(keys) != pointGets*valueBytes {
				panic("get_100 read the wrong bytes")
			}
		}
		return time.Since(start)
	})
	first := storeKeys / 2
	rangeStart, rangeEnd := key(first), key(first+batchKeys)
	measure("range_1000", rangeIters, func() time.Duration {
		start := time.Now()
		for i := 0; i < rangeIters; i++ {
			if e.rangeScan(rangeStart, rangeEnd) != batchKeys {
				panic("range_1000 read the wrong rows")
			}
		}
		return time.Since(start)
	})
}

func compaction(op string, fsync bool) {
	measure(op, 1, func() time.Duration {
		e := withHistory(compactKeys)
		defer e.close()
		start := time.Now()
		removed := e.compact(fsync)
		elapsed := time.Since(start)
		if removed != compactKeys {
			panic(fmt.Sprintf("%s removed %d rows, not %d", op, removed, compactKeys))
		}
		if e.compact(false) != 0 {
			panic(op + ": a second compaction removed rows")
		}
		return elapsed
	})
}

func main() {
	flag.Parse()
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bbolt-bench: -rounds must be at least 1")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "keel-bbolt-bench-")
	must(err)
	workDir = dir
	defer os.RemoveAll(dir)
	fmt.Printf("{\"options\":%q}\n", optionsText)
	putBatches("put_1000/memory", false, putMemoryIters)
	putBatches("put_1000/fsync", true, putFsyncIters)
	reads()
	compaction("compact_10k/memory", false)
	compaction("compact_10k/fsync", true)
}
