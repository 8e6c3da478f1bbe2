package keyvalue

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := "# comment\nA = 1 # trailing\n\nlist = x, \\\n  y, \\\n  bad\n\u212aey = 2\n"
	var got []string
	err := Parse("t.conf", strings.NewReader(in), func(k, v string) error {
		got = append(got, k+"="+v)
		if k == "list" {
			return Item("bad", errors.New("bad item"))
		}
		return nil
	}, nil)
	if err == nil || err.Error() != "t.conf:6: bad item" {
		t.Errorf("got error %v, want t.conf:6: bad item (the line holding the item)", err)
	}
	if strings.Join(got, ";") != "a=1;list=x,    y,    bad" {
		t.Errorf("got entries %q", got)
	}
	err = Parse("t.conf", strings.NewReader("\u212aey = 2\n"), func(k, v string) error {
		if k == "key" {
			return errors.New("the Kelvin sign was folded into k")
		}
		return nil
	}, nil)
	if err != nil {
		t.Error(err)
	}
}
