package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
)

// pullLogInterval spaces the progress lines of a pull.
const pullLogInterval = 2 * time.Second

// EnsureImage makes sure the image ref is on the host. An image already there
// costs one inspect. Otherwise it is pulled, bounded only by ctx, with
// progress (layers and bytes) logged at most every two seconds while the
// engine reports progress.
//
// When the image is missing and the pull fails, the error wraps
// ErrImageUnavailable and says why the pull failed; an engine that does not
// answer at all yields ErrUnavailable instead.
func (e *Engine) EnsureImage(ctx context.Context, ref string) error {
	if ref == "" {
		return errors.New("ensure image: empty reference")
	}
	err := e.inspectImage(ctx, ref)
	if err == nil || !cerrdefs.IsNotFound(err) {
		return err
	}

	e.log.Info().Str("image", ref).Msg("image not on the host; pulling")
	start := time.Now()
	if err := e.pull(ctx, ref); err != nil {
		return mark(ErrImageUnavailable,
			fmt.Errorf("image %s is not on this host and cannot be pulled: %w", ref, classify(ctx, err)))
	}
	if err := e.inspectImage(ctx, ref); err != nil {
		return mark(ErrImageUnavailable,
			fmt.Errorf("image %s is still not on this host after a pull: %w", ref, err))
	}
	e.log.Info().Str("image", ref).Dur("took", time.Since(start)).Msg("pulled image")
	return nil
}

func (e *Engine) inspectImage(ctx context.Context, ref string) error {
	cctx, cancel := e.callContext(ctx)
	defer cancel()
	if _, err := e.images.ImageInspect(cctx, ref); err != nil {
		return fmt.Errorf("inspect image %s: %w", ref, classify(ctx, err))
	}
	return nil
}

// pull runs one image pull to its end. Docker reports most pull failures
// inside the stream, after a 200, so the stream is read to the end.
func (e *Engine) pull(ctx context.Context, ref string) error {
	body, err := e.images.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer body.Close()

	progress := pullProgress{layers: map[string]*layerProgress{}}
	lastLog := time.Now()
	dec := json.NewDecoder(body)
	for {
		var msg pullMessage
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read pull progress: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		progress.update(msg)
		if time.Since(lastLog) >= pullLogInterval {
			lastLog = time.Now()
			done, total, current, size := progress.summary()
			e.log.Info().Str("image", ref).Int("layersDone", done).Int("layers", total).
				Int64("bytes", current).Int64("bytesTotal", size).Msg("pulling image")
		}
	}
}

// pullMessage is one line of the pull's JSON stream (a subset of the SDK's
// jsonmessage.JSONMessage, whose package drags in terminal handling).
type pullMessage struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Error string `json:"error"`
}

// pullProgress tracks a pull's layers. It is owned by the pulling goroutine.
type pullProgress struct {
	layers map[string]*layerProgress
}

type layerProgress struct {
	current, total int64
	done           bool
}

func (p *pullProgress) update(msg pullMessage) {
	l := p.layers[msg.ID]
	switch msg.Status {
	case "Pulling fs layer", "Waiting":
		if l == nil {
			p.layers[msg.ID] = &layerProgress{}
		}
		return
	case "Already exists":
		p.layers[msg.ID] = &layerProgress{done: true}
		return
	}
	if l == nil {
		return // not a layer: "Pulling from ...", "Digest: ...", "Status: ..."
	}
	switch msg.Status {
	case "Downloading":
		l.current, l.total = msg.ProgressDetail.Current, msg.ProgressDetail.Total
	case "Download complete", "Verifying Checksum":
		l.current = l.total
	case "Pull complete":
		l.current, l.done = l.total, true
	}
}

// summary returns layers done and known, and bytes downloaded and expected.
func (p *pullProgress) summary() (done, total int, current, size int64) {
	for _, l := range p.layers {
		total++
		if l.done {
			done++
		}
		current += l.current
		size += l.total
	}
	return done, total, current, size
}
