"""A generated video corpus whose every fact, place and time is known: for tests and ``eval``.

:func:`plan_samples` lays the corpus out (pure: no files, no fonts, no espeak);
:func:`make_samples` writes it; :func:`write_queries` wrote the frozen
``data/queries.jsonl`` from the default corpus (64 videos, seed 0).

Layout (``count`` = 64): six video recipes in turn, two per language, so any six
consecutive videos hold every channel and language. Times are seconds.

====  ====  ===================================================================  ===========
 #    lang  what the video holds (each *fact* is one sentence)                    audio
====  ====  ===================================================================  ===========
 0    en    title slide; fact 1 on a slide *and* spoken; fact 2 spoken             speech
 1    zh    title slide; fact 1 on a slide; fact 2 in a sidecar (.srt or .zh.vtt)  none
 2    es    fact 1 spoken; fact 2 spoken *and* in a sidecar (.es.vtt or .srt);     speech
            fact 3 on a slide
 3    en    title slide; facts 1 and 2 in embedded ``mov_text`` subtitles          none
 4    zh    title slide; facts 1 and 2 on slides, fact 1's slide shown again;      none
            fact 3 in embedded ``mov_text`` subtitles
 5    es    title slide; fact 1 on a slide; fact 2 in a sidecar (.srt or .es.vtt)  none
====  ====  ===================================================================  ===========

Hard cases: a *twin* is a fact repeated in another video with one number changed (each has
its own query, which names the number); a *shared* fact is the same sentence in two videos
(both relevant); slides are held for seconds (repeated frames) and one slide comes back.
Speech is espeak-ng (``en``, ``es``; no Chinese speech); no video has audio without speech.
"""

from __future__ import annotations

from tideflow_video_search._sample_facts import UNANSWERABLE
from tideflow_video_search._sample_plan import MAX_COUNT, MIN_COUNT, plan_samples
from tideflow_video_search._sample_queries import (
    DEFAULT_QUERIES,
    QUERIES_FILE,
    build_queries,
    write_queries,
)
from tideflow_video_search._sample_truth import (
    LANGUAGES,
    TRUTH_FILE,
    Fact,
    SampleCorpus,
    Span,
    VideoTruth,
    load_truth,
)
from tideflow_video_search._sample_writer import make_bad_samples, make_samples

__all__ = [
    # the corpus and its truth
    "Fact",
    "SampleCorpus",
    "Span",
    "VideoTruth",
    "load_truth",
    "plan_samples",
    # writing it
    "make_bad_samples",
    "make_samples",
    # the frozen questions
    "DEFAULT_QUERIES",
    "UNANSWERABLE",
    "build_queries",
    "write_queries",
    # constants
    "LANGUAGES",
    "MAX_COUNT",
    "MIN_COUNT",
    "QUERIES_FILE",
    "TRUTH_FILE",
]
