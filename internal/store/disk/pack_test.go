package disk

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"vzpkg2/internal/store"
)

// decodeInfo must read every record as json.Unmarshal would: what
// json.Marshal wrote, and what it did not.
func TestDecodeInfoIsJSON(t *testing.T) {
	when := time.Date(2026, 11, 30, 19, 49, 27, 123456789, time.UTC)
	var records []string
	for _, info := range []store.Info{
		{},
		{Key: "deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", Size: 53_000, SHA256: "2e268cfc18d4545e6d368db9ff18480740ee3d68d0ca431caf5101068ffd097b", ContentType: "application/vnd.debian.binary-package", ETag: `"5e1-61b"`, LastModified: when.Truncate(time.Second), Validated: when},
		{Key: "h/a b/ü/<&>/x?y=1", Size: -1, Validated: when.In(time.FixedZone("", 3600))},
		{Key: "h/tab\there/back\\slash", Validated: when},
		{Key: "h/bad\xffutf8", Validated: when},
		{Key: `h/"quoted"/and\\`, ETag: `W/"x"`, Validated: when},
	} {
		b, err := json.Marshal(info)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, string(b))
	}
	records = append(records,
		`{"key": "spaced", "size": 1}`,
		`{"key":"k","size":"12"}`,
		`{"key":12}`,
		`{"key":"k","validated":null}`,
		`{"key":"k","validated":"yesterday"}`,
		`{"key":"k","unknown":"x"}`,
		`{"key":"k",}`,
		`{"key":"k"`,
		`{"key":"k","size":1}x`,
		`{"key":"k","key":"last"}`,
		`{"key":"a\\"}`,
		`{"key":"a\"`,
		`{"key":"\u0041"}`,
		`{}`,
		``,
		`}`,
		`"key":"a"}`,
		`{"size":+5}`,
		`{"size":05}`,
		`{"size":-0}`,
	)
	for i, rec := range records {
		var want, got store.Info
		if (i < 2 || i == 5) && !fastInfo([]byte(rec), &got) {
			t.Errorf("%s: not decoded without encoding/json", rec)
		}
		wantErr := json.Unmarshal([]byte(rec), &want)
		err := decodeInfo([]byte(rec), &got)
		if (err != nil) != (wantErr != nil) || err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("decodeInfo(%s) = %+v, %v; json.Unmarshal: %+v, %v", rec, got, err, want, wantErr)
		}
	}
}
