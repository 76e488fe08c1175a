package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nbpool/nbpool/api"
)

func TestCreateBinding(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	b := api.Binding{Name: "fake", Image: "nbpool-test/fakenb:latest", Env: map[string]string{"A": "1"}, Pool: api.PoolSpec{Min: 2}}
	before := time.Now()
	got, err := s.CreateBinding(ctx, b)
	if err != nil {
		t.Fatalf("CreateBinding: %v", err)
	}
	if got.Created.Before(before.Add(-time.Second)) || !got.Updated.Equal(got.Created) {
		t.Errorf("Created %v, Updated %v: want both now", got.Created, got.Updated)
	}
	stored, err := s.GetBinding(ctx, "fake")
	if err != nil {
		t.Fatalf("GetBinding: %v", err)
	}
	if !reflect.DeepEqual(stored, got) {
		t.Errorf("GetBinding = %+v, want what CreateBinding returned, %+v", stored, got)
	}

	again := b
	again.Image = "other"
	if _, err := s.CreateBinding(ctx, again); !errors.Is(err, ErrExists) {
		t.Errorf("second CreateBinding: %v, want ErrExists", err)
	}
	if stored, _ := s.GetBinding(ctx, "fake"); stored.Image != b.Image {
		t.Errorf("a refused CreateBinding replaced the image with %q", stored.Image)
	}
	if _, err := s.CreateBinding(ctx, api.Binding{}); err == nil {
		t.Error("CreateBinding without a name succeeded")
	}
}

func TestPutBinding(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	first, created, err := s.PutBinding(ctx, api.Binding{Name: "b", Image: "one"})
	if err != nil || !created {
		t.Fatalf("first PutBinding = created %v, %v; want created", created, err)
	}
	time.Sleep(time.Millisecond)
	second, created, err := s.PutBinding(ctx, api.Binding{Name: "b", Image: "two"})
	if err != nil || created {
		t.Fatalf("second PutBinding = created %v, %v; want replaced", created, err)
	}
	if !second.Created.Equal(first.Created) {
		t.Errorf("Created changed from %v to %v on replace", first.Created, second.Created)
	}
	if !second.Updated.After(first.Updated) {
		t.Errorf("Updated %v is not after %v", second.Updated, first.Updated)
	}
	stored, err := s.GetBinding(ctx, "b")
	if err != nil || !reflect.DeepEqual(stored, second) {
		t.Errorf("GetBinding = %+v, %v; want %+v", stored, err, second)
	}
	if bs, _ := s.ListBindings(ctx); len(bs) != 1 {
		t.Errorf("%d bindings after two puts of one name, want 1", len(bs))
	}
}

func TestGetAndDeleteBindingNotFound(t *testing.T) {
	s := openStore(t, Options{})
	tests := []struct {
		name string
		call func() error
	}{
		{"GetBinding", func() error { _, err := s.GetBinding(t.Context(), "nope"); return err }},
		{"DeleteBinding", func() error { return s.DeleteBinding(t.Context(), "nope") }},
		{"PutPoolSize", func() error { return s.PutPoolSize(t.Context(), "nope", api.PoolSpec{Min: 1}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			if want := `"nope"`; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		})
	}
}

func TestListBindingsSorted(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	if bs, err := s.ListBindings(ctx); err != nil || len(bs) != 0 {
		t.Fatalf("empty store: %v, %v", bs, err)
	}
	for _, name := range []string{"zeta", "a-1", "a", "m9", "0x"} {
		if _, err := s.CreateBinding(ctx, api.Binding{Name: name, Image: "img"}); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := s.ListBindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range bs {
		names = append(names, b.Name)
	}
	if want := []string{"0x", "a", "a-1", "m9", "zeta"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListBindings names = %v, want %v", names, want)
	}
}

func TestDeleteBinding(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	for _, name := range []string{"gone", "kept"} {
		if _, err := s.CreateBinding(ctx, api.Binding{Name: name, Image: "img"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPoolSize(ctx, name, api.PoolSpec{Min: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutLaunch(ctx, launch("l1", "gone", api.StateClaimed, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBinding(ctx, "gone"); err != nil {
		t.Fatalf("DeleteBinding: %v", err)
	}
	if _, err := s.GetBinding(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted binding: %v, want ErrNotFound", err)
	}
	if _, ok, _ := s.PoolSize(ctx, "gone"); ok {
		t.Error("the deleted binding's pool size survived it")
	}
	if _, _, err := s.PutBinding(ctx, api.Binding{Name: "gone", Image: "img"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.PoolSize(ctx, "gone"); ok {
		t.Error("a re-created binding inherited the old pool size")
	}
	if p, ok, _ := s.PoolSize(ctx, "kept"); !ok || p.Min != 3 {
		t.Errorf("other binding's pool size = %+v, %v; want min 3", p, ok)
	}
	if _, err := s.GetLaunch(ctx, "l1"); err != nil {
		t.Errorf("DeleteBinding removed a launch: %v", err)
	}
	if err := s.DeleteBinding(ctx, "gone2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteBinding of an absent binding: %v, want ErrNotFound", err)
	}
}

func TestPoolSize(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Options{})
	if _, err := s.CreateBinding(ctx, api.Binding{Name: "b", Image: "img", Pool: api.PoolSpec{Min: 1}}); err != nil {
		t.Fatal(err)
	}
	if p, ok, err := s.PoolSize(ctx, "b"); err != nil || ok || p != (api.PoolSpec{}) {
		t.Errorf("PoolSize before any put = %+v, %v, %v; want none", p, ok, err)
	}
	for _, want := range []api.PoolSpec{{Min: 8, Max: 20}, {Min: 0}, {Min: 2, Max: 2}} {
		if err := s.PutPoolSize(ctx, "b", want); err != nil {
			t.Fatalf("PutPoolSize(%+v): %v", want, err)
		}
		if got, ok, err := s.PoolSize(ctx, "b"); err != nil || !ok || got != want {
			t.Errorf("PoolSize = %+v, %v, %v; want %+v", got, ok, err, want)
		}
	}
	for range 2 { // the second delete finds nothing and is not an error
		if err := s.DeletePoolSize(ctx, "b"); err != nil {
			t.Fatalf("DeletePoolSize: %v", err)
		}
		if _, ok, _ := s.PoolSize(ctx, "b"); ok {
			t.Error("pool size still set after DeletePoolSize")
		}
	}
	if b, _ := s.GetBinding(ctx, "b"); b.Pool.Min != 1 {
		t.Errorf("pool sizes changed the binding's own spec to %+v", b.Pool)
	}
}
