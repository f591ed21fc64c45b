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

import json
import math
import os
import random
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from tideflow.core.errors import ConfigError

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
    "TRUTH_FILE",
]

log = structlog.get_logger(__name__)

LANGUAGES = ("en", "zh", "es")
"""The corpus's languages: English, Chinese (no speech), Spanish."""
TRUTH_FILE = "truth.json"
"""Written next to the videos by :func:`make_samples`; read back by :func:`load_truth`."""
DEFAULT_QUERIES = Path(__file__).parent / "data" / "queries.jsonl"
"""The frozen query file for the default corpus (``make_samples(dir)``: 64 videos, seed 0)."""

_WIDTH, _HEIGHT, _RATE, _AUDIO_RATE = 320, 180, 5, 16000
_WORDS_PER_MINUTE = 130
_GAP_S = 0.8  # blank frames between two parts of a video
_TITLE_S = 1.5
_SLIDE_S = 4.5  # how long a fact slide stays (22 identical frames of text at 5 fps)
_REPEAT_S = 2.5
_CUE_S = 3.5
_LATIN_LINE, _CJK_LINE, _MAX_LINES = 24, 13, 4  # characters per slide line (20-px glyphs)
_VOICES = {"en": "en-us", "es": "es+m3"}  # read best by Whisper base (WER 0.16, 0.45)


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True, kw_only=True)
class Fact:
    """One sentence the corpus states, and the paraphrased question it answers."""

    id: str
    """``<lang>-<pool>-<nn>``; a twin adds ``-twin``."""
    language: str
    text: str
    question: str
    spoken: bool
    """Written for speech: plain words that espeak-ng says and Whisper hears."""
    twin: tuple[str, str] | None = None
    """``(number, other number)``: another video states it with the other number."""
    shared: bool = False
    """Another video states the very same sentence."""


@dataclass(frozen=True, kw_only=True)
class Span:
    """A text one channel of a video holds from ``start_s`` to ``end_s``."""

    channel: str
    """``ocr``, ``subtitle`` or ``speech``."""
    carrier: str
    """``slide``, ``srt``, ``vtt``, ``mov_text`` (embedded) or ``speech``."""
    start_s: float
    end_s: float
    text: str
    """The sentence; for a slide, its lines as drawn (Latin joined by spaces, CJK by none)."""
    language: str
    fact: str | None = None
    """The :class:`Fact`'s id; ``None`` for a title slide."""
    lines: tuple[str, ...] = ()
    """A slide's lines, top to bottom."""


@dataclass(frozen=True, kw_only=True)
class VideoTruth:
    """Everything a generated video holds; ``video_id`` is its path under the corpus folder."""

    video_id: str
    language: str
    duration_s: float
    spans: tuple[Span, ...]
    sidecar: str | None = None
    """The sidecar subtitle file's path under the corpus folder, if any."""
    background: tuple[int, int, int] = (24, 36, 72)

    def channel(self, channel: str) -> tuple[Span, ...]:
        """The spans of one channel, in time order."""
        return tuple(sorted((s for s in self.spans if s.channel == channel), key=_start))

    @property
    def has_speech(self) -> bool:
        return any(s.channel == "speech" for s in self.spans)


@dataclass(frozen=True, kw_only=True)
class SampleCorpus:
    """The truth of a generated corpus: its videos and the facts they state."""

    count: int
    seed: int
    languages: tuple[str, ...]
    videos: tuple[VideoTruth, ...]
    facts: tuple[Fact, ...]
    """The facts placed in at least one video, each once (twins are facts of their own)."""
    folder: Path | None = field(default=None, compare=False)

    def video(self, video_id: str) -> VideoTruth:
        for video in self.videos:
            if video.video_id == video_id:
                return video
        raise KeyError(f"no video {video_id!r} in the corpus ({len(self.videos)} videos)")

    def spans_of(self, fact_id: str) -> list[tuple[str, Span]]:
        """``(video_id, span)`` for every place the fact is stated."""
        return [(v.video_id, s) for v in self.videos for s in v.spans if s.fact == fact_id]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("folder")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path | None = None) -> SampleCorpus:
        videos = tuple(
            VideoTruth(
                **{
                    **v,
                    "spans": tuple(Span(**{**s, "lines": tuple(s["lines"])}) for s in v["spans"]),
                    "background": tuple(v["background"]),
                }
            )
            for v in data["videos"]
        )
        facts = tuple(
            Fact(**{**f, "twin": tuple(f["twin"]) if f["twin"] else None}) for f in data["facts"]
        )
        return cls(
            count=data["count"],
            seed=data["seed"],
            languages=tuple(data["languages"]),
            videos=videos,
            facts=facts,
            folder=folder,
        )


def _start(span: Span) -> float:
    return span.start_s


def load_truth(folder: str | os.PathLike[str]) -> SampleCorpus:
    """The truth :func:`make_samples` wrote into ``folder`` (``truth.json``)."""
    path = Path(folder) / TRUTH_FILE
    if not path.exists():
        message = f"{path} not found: is {folder} a folder that `video-search samples` made?"
        raise FileNotFoundError(message)
    return SampleCorpus.from_json(json.loads(path.read_text(encoding="utf-8")), Path(folder))


# --------------------------------------------------------------------------- facts


def _f(
    text: str, question: str, *, twin: tuple[str, str] | None = None, shared: bool = False
) -> tuple[str, str, tuple[str, str] | None, bool]:
    return text, question, twin, shared


# Spoken facts: ordinary words (espeak-ng says them, Whisper base must hear them).
_EN_SPOKEN = (
    _f("The Blue Heron ferry carries 340 passengers across Silver Lake every morning.",
       "How many people can the Blue Heron ferry take over Silver Lake?"),
    _f("The Maple Street bakery sells fresh rye bread only on Saturdays.",
       "Which day of the week does the Maple Street bakery have rye bread?"),
    _f("The Oak Hill library will stay open until midnight during the winter exams.",
       "How late is the Oak Hill library open in the winter exam period?"),
    _f("The Red Fox hiking trail is closed because of a rock slide near the summit.",
       "Why can hikers not use the Red Fox trail right now?"),
    _f("The Green Valley farm grows twelve kinds of apples on its northern hill.",
       "How many apple varieties are grown at the Green Valley farm?"),
    _f("The Stone Bridge museum has a new room about old sailing ships.",
       "What is the new exhibition room at the Stone Bridge museum about?"),
    _f("The night train to Pine Harbor leaves at eleven fifteen from platform four.",
       "When does the overnight train for Pine Harbor depart?"),
    _f("The Golden Pear cafe gives free coffee to every nurse on Mondays.",
       "Which cafe offers nurses free coffee at the start of the week?"),
    _f("The River Park swimming pool will reopen in June after new heating is installed.",
       "When is the River Park pool opening again?"),
    _f("The Willow Creek choir won first prize at the spring music festival.",
       "Which choir took the top award at the spring music festival?"),
    _f("The Iron Mill school planted two hundred trees along the canal.",
       "How many trees did the Iron Mill school plant by the canal?"),
    _f("The Copper Hill market sells honey from sixty local bee farms.",
       "How many bee farms supply honey to the Copper Hill market?"),
    _f("The old lighthouse on Gull Point now runs on solar power.",
       "What powers the lighthouse at Gull Point today?"),
    _f("Bus number nine now stops at the new city hospital every ten minutes.",
       "How often does bus nine reach the new hospital?"),
    _f("The Black Rock tunnel will be closed for repairs for three weeks in May.",
       "How long will repairs shut the Black Rock tunnel?"),
    _f("The Summer Hill zoo welcomed two baby elephants last month.",
       "Which baby animals arrived at the Summer Hill zoo?"),
    _f("The Cedar Lane garden club meets every Thursday evening in the church hall.",
       "Where and when does the Cedar Lane garden club get together?"),
    _f("The East Field football team has not lost a game in two seasons.",
       "Which football team has been unbeaten for two seasons?"),
    _f("Fresh snow closed the road over Eagle Pass for the whole weekend.",
       "Why was the Eagle Pass road shut over the weekend?"),
    _f("The Harbor Light theater is showing a silent film with a live piano.",
       "Where can I watch a silent movie with live piano music?"),
    _f("The Wild Rose hotel has forty rooms and a garden on the roof.",
       "How many rooms are there in the Wild Rose hotel?"),
    _f("Farmers near Mill Lake harvested a record crop of potatoes this autumn.",
       "What record harvest did the farmers at Mill Lake bring in this fall?"),
)  # fmt: skip

_EN_WRITTEN = (
    _f("The Varnholt ferry carries 340 passengers across Lake Emmer.",
       "Varnholt ferry with room for 340 people on Lake Emmer", twin=("340", "280")),
    _f("Quellborn Dynamics shipped 12,500 Tessaro drones in March.",
       "Did Quellborn deliver 12,500 Tessaro drones in March?", twin=("12,500", "14,500")),
    _f("Mirelle Okonjo ran the Tarsk marathon in 2 hours 41 minutes.",
       "Who finished the Tarsk marathon in 2 hours and 41 minutes?", twin=("41", "47")),
    _f("The Ostrelin observatory found a comet it named Pell-Harrow 9.",
       "What name did the Ostrelin observatory give its new comet?"),
    _f("Brannick Foods recalled its Duskberry jam over a labeling error.",
       "Why was the Duskberry jam from Brannick Foods pulled from shops?"),
    _f("Councillor Ysolde Marr proposed a tram line from Keswater to Old Fenn.",
       "Which councillor wants trams between Keswater and Old Fenn?"),
    _f("The Halloran Prize for poetry went to Teodor Vask for Salt Orchards.",
       "Who won the Halloran poetry prize, and for which book?"),
    _f("Zephyrine Labs says its Corvel battery lasts 19 hours on one charge.",
       "How long does the Corvel battery from Zephyrine Labs run per charge?"),
    _f("Twelve falcons nest on the north tower of Dunmere cathedral.",
       "How many falcons live on the tower of Dunmere cathedral?"),
    _f("The Pellow river flooded the lower town of Ashgrove on 4 November.",
       "When did the Pellow river flood Ashgrove?", shared=True),
    _f("Kestrin Airways cancelled all flights from Lorvik because of ash clouds.",
       "Why did Kestrin Airways stop flying out of Lorvik?"),
    _f("Architect Nadira Voss designed the glass library of Brenholm.",
       "Who was the architect of the Brenholm glass library?"),
    _f("The Tallowmere cheese fair expects 8,000 visitors this weekend.",
       "How many people are expected at the Tallowmere cheese fair?", shared=True),
    _f("A storm knocked out power to 3,200 homes in Vellicott.",
       "How many houses in Vellicott lost electricity in the storm?"),
    _f("Grisholm Zoo's oldest tortoise, Bartholomew, turned 112.",
       "How old is Bartholomew, the tortoise at Grisholm Zoo?"),
    _f("The Orrin Valley rail bridge is 1.8 kilometres long.",
       "What is the length of the railway bridge in Orrin Valley?"),
    _f("Chef Amaury Lisk opened a noodle bar called Eleven Bowls in Port Sable.",
       "What is Amaury Lisk's noodle restaurant in Port Sable called?"),
)  # fmt: skip

_ZH_WRITTEN = (
    _f("青石镇图书馆每周三晚上开放到九点半。", "青石镇的图书馆周三几点关门？"),
    _f("白鹭湖渡轮每天运送1200名乘客。", "白鹭湖的渡船一天能载1200位旅客吗？",
       twin=("1200", "1500")),
    _f("云岭茶厂今年春天采摘了三百吨新茶。", "云岭茶厂春季新茶产量是多少？"),
    _f("林晓梅教授发现了一种会发光的蘑菇。", "哪位教授找到了能发光的菌类？"),
    _f("金沙港新码头将于十月一日正式启用。", "金沙港的新码头什么时候开始使用？"),
    _f("赤松村小学只有二十七名学生。", "赤松村的小学一共有多少个学生？"),
    _f("望江楼餐厅的招牌菜是桂花糖藕。", "望江楼餐厅最有名的菜是什么？"),
    _f("龙泉山隧道因塌方暂停通行三天。", "龙泉山隧道为什么关闭了？"),
    _f("翠湖公园的樱花节吸引了八万名游客。", "翠湖公园樱花节来了多少人？", shared=True),
    _f("雷鸣科技发布了续航四十小时的蓝鲸耳机。", "蓝鲸耳机的电池能用多久？"),
    _f("东篱书店把二楼改成了儿童阅读区。", "东篱书店的二层现在用来做什么？"),
    _f("海棠镇的老邮局被改建成了咖啡馆。", "海棠镇旧邮政局现在变成了什么？"),
    _f("周明远在山城马拉松中以2小时15分夺冠。", "谁用2小时15分赢得了山城马拉松？",
       twin=("15", "19")),
    _f("北沙河大桥全长3600米。", "长度3600米的北沙河桥", twin=("3600", "3900")),
    _f("银杏街菜市场每天早上六点开门。", "银杏街的菜场早晨几点营业？"),
    _f("凤凰剧院下周上演新编京剧《月下渔歌》。", "凤凰剧院下星期演哪出京剧？"),
    _f("石门水库的水位比去年同期高出两米。", "石门水库水位和去年相比怎么样？"),
    _f("梅岭动物园新来了一对小熊猫。", "梅岭动物园来了什么新动物？"),
    _f("紫藤路将在周末封闭，进行管道维修。", "紫藤路周末为什么不能通行？"),
    _f("苏文静设计的竹子凉亭获得了建筑奖。", "谁设计的竹凉亭得了建筑类奖项？"),
    _f("清河镇农民今年种了五百亩向日葵。", "清河镇今年向日葵种植面积有多大？"),
    _f("星光小学的合唱团获得全省比赛第一名。", "哪个学校的合唱团在省里比赛拿了冠军？"),
    _f("蓝湾游泳馆因更换水管关闭到六月。", "蓝湾游泳馆什么时候重新开放？"),
    _f("南屏古城墙修复工程预计花费1.2亿元。", "南屏古城墙的修缮预算是多少？"),
    _f("飞燕航空开通了从临川到海口的直飞航线。", "飞燕航空新开了哪条直航？"),
    _f("竹溪村的百年老樟树被列为保护古树。", "竹溪村那棵一百年的樟树受到什么保护？"),
    _f("晨曦医院的新儿科大楼有200张病床。", "晨曦医院哪栋楼有200张病床？", twin=("200", "260")),
    _f("锦江夜市新增了四十个小吃摊位。", "锦江夜市多了多少个小吃摊？"),
    _f("松风客栈只接待提前预约的客人。", "去松风客栈住宿需要预订吗？"),
    _f("明珠科技馆推出了关于火山的新展览。", "明珠科技馆最新展览的主题是什么？"),
    _f("陈立新用三年时间骑自行车环游全国。", "陈立新骑车走遍全国花了多久？"),
    _f("柳湾码头的晚班轮渡改为十点发船。", "柳湾码头末班渡轮几点出发？"),
    _f("秋枫中学的学生种了一千棵小树苗。", "秋枫中学学生栽了多少棵树苗？"),
    _f("玉泉山温泉度假村冬季门票打八折。", "玉泉山温泉冬天门票有什么优惠？"),
    _f("黎川县今年的稻谷产量创历史新高。", "黎川县的水稻收成今年如何？"),
    _f("槐安路的红绿灯将改为智能控制。", "槐安路的交通信号灯要做什么改变？"),
    _f("白塔寺的钟声每天傍晚六点响起。", "白塔寺每天几点敲钟？"),
    _f("东澳渔村博物馆收藏了三百多件古代渔具。", "东澳渔村博物馆有多少件老渔具？"),
    _f("高原列车雪莲号全程需要二十六个小时。", "雪莲号列车跑完全程要多长时间？"),
    _f("杨柳村的手工豆腐在网上卖到了全国。", "杨柳村做的豆腐卖到了哪里？"),
    _f("暴雨导致云溪镇三百户居民停电。", "云溪镇有多少家庭因大雨断电？", shared=True),
    _f("长风体育馆将举办全国青年羽毛球赛。", "全国青年羽毛球比赛在哪个场馆举行？"),
    _f("青苔岛每年只有夏季对游客开放。", "游客什么季节可以登上青苔岛？"),
    _f("韩雪设计的机器人能自动分拣垃圾。", "韩雪发明的机器人有什么功能？"),
    _f("桃源镇的新图书馆藏书五万册。", "桃源镇新建的图书馆有多少本书？"),
    _f("镜湖音乐节今年邀请了十二支乐队。", "今年镜湖音乐节有几支乐队参加？"),
)  # fmt: skip

_ES_SPOKEN = (
    _f("El mercado de Puerto Salinas abre los jueves a las siete de la mañana.",
       "¿A qué hora abre el mercado de Puerto Salinas los jueves?"),
    _f("La biblioteca de Villa Rosa tiene doce mil libros y un jardín de naranjos.",
       "¿Cuántos libros hay en la biblioteca de Villa Rosa?"),
    _f("El tren nocturno a Monte Claro sale a las once desde el andén cinco.",
       "¿Cuándo parte el tren de noche hacia Monte Claro?"),
    _f("La panadería Santa Lucía vende pan de maíz solo los domingos.",
       "¿Qué día tiene pan de maíz la panadería Santa Lucía?"),
    _f("El puente viejo de Río Verde estará cerrado durante todo el verano.",
       "¿Cuánto tiempo van a cerrar el puente antiguo de Río Verde?"),
    _f("El coro de la escuela San Pedro ganó el primer premio del festival de primavera.",
       "¿Qué coro escolar se llevó el primer lugar en el festival de primavera?"),
    _f("La piscina municipal de Campo Alto abrirá de nuevo en julio.",
       "¿Cuándo vuelve a abrir la piscina de Campo Alto?"),
    _f("Los agricultores de Valle Hermoso cosecharon una cantidad récord de aceitunas.",
       "¿Qué cosecha récord lograron en Valle Hermoso?"),
    _f("El museo de Playa Blanca tiene una sala nueva sobre barcos de pesca.",
       "¿De qué trata la nueva sala del museo de Playa Blanca?"),
    _f("El faro de Punta Gaviota ahora funciona con energía solar.",
       "¿Con qué energía funciona hoy el faro de Punta Gaviota?"),
    _f("El zoológico de Loma Dorada recibió dos crías de jirafa el mes pasado.",
       "¿Qué animales bebé llegaron al zoológico de Loma Dorada?"),
    _f("La carretera del Paso del Águila se cerró por la nieve el fin de semana.",
       "¿Por qué cerraron la carretera del Paso del Águila?"),
    _f("El hotel Estrella del Mar tiene cuarenta habitaciones y una terraza.",
       "¿Cuántas habitaciones tiene el hotel Estrella del Mar?"),
    _f("El autobús número ocho ahora para en el hospital nuevo cada diez minutos.",
       "¿Cada cuánto llega el autobús ocho al nuevo hospital?"),
    _f("El café La Luna regala un café a los médicos los lunes.",
       "¿Qué cafetería invita a los médicos a un café al comienzo de la semana?"),
    _f("El equipo de fútbol de Cerro Azul no ha perdido en dos temporadas.",
       "¿Qué equipo de fútbol lleva dos temporadas invicto?"),
    _f("El teatro Central presenta una película muda con piano en vivo.",
       "¿Dónde puedo ver cine mudo con música de piano en directo?"),
    _f("La escuela de Arroyo Seco plantó doscientos árboles junto al río.",
       "¿Cuántos árboles plantó la escuela de Arroyo Seco?"),
    _f("El festival de cine de Bahía Serena durará diez días en octubre.",
       "¿Cuánto dura el festival de cine de Bahía Serena?"),
    _f("La feria del libro de Cuesta Larga espera cincuenta mil visitantes.",
       "¿Cuánta gente se espera en la feria del libro de Cuesta Larga?"),
    _f("El parque nacional Los Pinos prohíbe hacer fuego durante el verano.",
       "¿Se pueden hacer fogatas en el parque Los Pinos en verano?"),
    _f("La fábrica de chocolate de San Telmo abre sus puertas a los niños los sábados.",
       "¿Cuándo pueden los niños visitar la fábrica de chocolate de San Telmo?"),
)  # fmt: skip

_ES_WRITTEN = (
    _f("La naviera Ortigal transporta 420 pasajeros entre Isla Brava y Cabo Lirio.",
       "¿Qué naviera lleva 420 pasajeros de Isla Brava a Cabo Lirio?", twin=("420", "460")),
    _f("La cooperativa Valdemora produjo 9.300 litros de aceite en enero.",
       "¿Cuál cooperativa sacó 9.300 litros de aceite en enero?", twin=("9.300", "9.800")),
    _f("Inés Carvajo terminó la maratón de Tordesal en 2 horas y 38 minutos.",
       "¿Quién corrió la maratón de Tordesal en 2 horas 38 minutos?", twin=("38", "44")),
    _f("El observatorio de Serrazul descubrió un cometa llamado Brisa-7.",
       "¿Cómo se llama el cometa hallado por el observatorio de Serrazul?"),
    _f("La empresa Lumbrera lanzó la bicicleta eléctrica Tizón con 90 km de autonomía.",
       "¿Cuántos kilómetros recorre la bici eléctrica Tizón de Lumbrera?"),
    _f("El alcalde Rufino Osteva prometió un tranvía hasta el barrio de Almenar.",
       "¿Qué prometió el alcalde Osteva para el barrio de Almenar?"),
    _f("La poeta Aurelia Mendizábal ganó el premio Caracola por Sal de Invierno.",
       "¿Con qué libro ganó Aurelia Mendizábal el premio Caracola?"),
    _f("El río Tajuelo inundó la parte baja de Villacastor el 3 de marzo.",
       "¿Cuándo se desbordó el río Tajuelo en Villacastor?", shared=True),
    _f("La aerolínea Garza canceló todos los vuelos de Puerto Brumal por la niebla.",
       "¿Por qué suspendió Garza los vuelos desde Puerto Brumal?"),
    _f("La arquitecta Nerea Olaz diseñó el mercado de cristal de Fuenteluz.",
       "¿Quién diseñó el mercado de vidrio de Fuenteluz?"),
    _f("La feria del queso de Pedrazal recibirá 7.000 visitantes este sábado.",
       "¿Cuántas personas irán a la feria quesera de Pedrazal?", shared=True),
    _f("Una tormenta dejó sin luz a 2.100 casas en Marisol de Abajo.",
       "¿Cuántos hogares de Marisol de Abajo se quedaron sin electricidad?"),
    _f("La tortuga Matilde del zoológico de Cienfuentes cumplió 98 años.",
       "¿Qué edad tiene Matilde, la tortuga de Cienfuentes?"),
    _f("El puente ferroviario de Valdeoro mide 2,4 kilómetros.",
       "¿Qué longitud tiene el puente del tren de Valdeoro?"),
    _f("El chef Baltasar Quiroga abrió el restaurante Siete Ollas en Puerto Alcor.",
       "¿Cómo se llama el restaurante de Baltasar Quiroga en Puerto Alcor?"),
    _f("El túnel de Montejar abrirá al tráfico el 15 de septiembre.",
       "¿Cuándo podrán pasar coches por el túnel de Montejar?"),
    _f("La escuela de Robledal tiene solo 14 alumnos este curso.",
       "¿Cuántos estudiantes hay en la escuela de Robledal?"),
    _f("El museo Arenisca expone 300 mapas antiguos de navegantes.",
       "¿Cuántos mapas antiguos muestra el museo Arenisca?"),
    _f("La empresa Brisamar fabricó el velero solar Alcatraz en Ferrolina.",
       "¿Dónde se construyó el velero solar Alcatraz?"),
    _f("El festival de jazz de Olmedilla contará con once bandas.",
       "¿Cuántos grupos tocarán en el festival de jazz de Olmedilla?"),
    _f("Los bomberos de Castromar rescataron a un perro atrapado en un pozo.",
       "¿A quién salvaron los bomberos de Castromar?"),
    _f("El hospital San Ciprián inauguró una planta de pediatría con 80 camas.",
       "¿Cuántas camas tiene la nueva planta infantil del hospital San Ciprián?"),
    _f("La compañía Telarín estrenará la obra El Reloj de Arena en abril.",
       "¿Qué obra presentará la compañía Telarín en abril?"),
    _f("El lago Calderín se congeló por primera vez en veinte años.",
       "¿Cuándo se había helado el lago Calderín antes de ahora?"),
    _f("La startup Colibrí creó un robot que clasifica basura reciclable.",
       "¿Qué hace el robot de la startup Colibrí?"),
    _f("El viñedo Las Tejas vendimió 40 toneladas de uva tempranillo.",
       "¿Cuánta uva tempranillo recogió el viñedo Las Tejas?"),
)  # fmt: skip

UNANSWERABLE = (
    ("en", "How many passengers does the Northwind ferry carry across Lake Tarrow?"),
    ("en", "When does the Oak Hill swimming pool open in summer?"),
    ("en", "Who won the Brightwater short story competition?"),
    ("en", "What does a ticket for the Glenmarrow castle tour cost?"),
    ("en", "How tall is the clock tower in Fernhollow?"),
    ("en", "Which company makes the Strata X9 electric scooter?"),
    ("en", "When was the Dunhaven aquarium founded?"),
    ("en", "What time does the boat to Kilbrannan island leave on Sundays?"),
    ("en", "How many goals did Ravi Tennant score last season?"),
    ("en", "What are the opening hours of the Marsh End post office?"),
    ("en", "Which bakery on Orchard Row makes gluten-free cakes?"),
    ("en", "How long is the cycling path from Hollin Bay to Westmere?"),
    ("zh", "青松县新体育中心有多少个座位？"),
    ("zh", "红叶山缆车的票价是多少？"),
    ("zh", "谁获得了今年的金枫叶文学奖？"),
    ("zh", "海星镇的地铁站什么时候建成？"),
    ("zh", "南湖湿地公园有多少种鸟类？"),
    ("zh", "宁远博物馆周一开门吗？"),
    ("zh", "凌云科技新手机的屏幕有多大？"),
    ("zh", "白鹭湖上的观光游船几点出发？"),
    ("es", "¿Cuánto cuesta la entrada al castillo de Peñarroja?"),
    ("es", "¿Quién ganó el concurso de cuentos de Aguamarina?"),
    ("es", "¿A qué hora sale el barco a la isla de Santa Olvido los domingos?"),
    ("es", "¿Cuántos pisos tiene la torre del reloj de Valmediano?"),
    ("es", "¿Qué empresa fabrica el patinete eléctrico Rayo X2?"),
    ("es", "¿Cuándo se fundó el acuario de Puerto Nácar?"),
    ("es", "¿Cuántos goles marcó Darío Fuenmayor la temporada pasada?"),
)
"""Questions no video answers (``language``, ``question``): near misses in topic."""

_TITLES = {
    "en": ("Evening Bulletin", "Regional Roundup", "Community Notes", "Field Report",
           "Weekly Digest", "Town Crier"),
    "zh": ("城市快讯", "地方新闻", "周末纪事", "今日关注", "民生报道", "社区动态"),
    "es": ("Noticias del Valle", "Crónica Local", "Resumen Semanal", "Boletín Regional",
           "Diario de la Costa", "Ecos del Barrio"),
}  # fmt: skip
_SLUGS = {
    "城市快讯": "chengshi-kuaixun", "地方新闻": "difang-xinwen", "周末纪事": "zhoumo-jishi",
    "今日关注": "jinri-guanzhu", "民生报道": "minsheng-baodao", "社区动态": "shequ-dongtai",
}  # fmt: skip
_UNTITLED = {"en": "clip", "zh": "pianduan", "es": "charla"}


def _catalog() -> dict[tuple[str, str], list[Fact]]:
    """The facts of each pool (``(language, "spoken" | "written")``), in authored order."""
    pools = {
        ("en", "spoken"): _EN_SPOKEN,
        ("en", "written"): _EN_WRITTEN,
        ("zh", "written"): _ZH_WRITTEN,
        ("es", "spoken"): _ES_SPOKEN,
        ("es", "written"): _ES_WRITTEN,
    }
    catalog = {}
    for (language, kind), entries in pools.items():
        catalog[(language, kind)] = [
            Fact(
                id=f"{language}-{kind}-{i:02d}",
                language=language,
                text=text,
                question=question,
                spoken=kind == "spoken",
                twin=twin,
                shared=shared,
            )
            for i, (text, question, twin, shared) in enumerate(entries)
        ]
    return catalog


def _twin_of(fact: Fact) -> Fact:
    assert fact.twin is not None
    number, other = fact.twin
    return Fact(
        id=f"{fact.id}-twin",
        language=fact.language,
        text=fact.text.replace(number, other),
        question=fact.question.replace(number, other),
        spoken=fact.spoken,
    )


# --------------------------------------------------------------------------- layout

# A recipe: (language, title?, audio?, sidecar formats by cycle parity, parts). A part:
# (pool kind, carriers); "again" re-shows the slide of the recipe's first part.
_Recipe = tuple[str, bool, tuple[str, str] | None, tuple[tuple[str, tuple[str, ...]], ...]]
_RECIPES: tuple[_Recipe, ...] = (
    ("en", True, None, (("spoken", ("slide", "speech")), ("spoken", ("speech",)))),
    ("zh", True, ("srt", "vtt"), (("written", ("slide",)), ("written", ("sidecar",)))),
    (
        "es",
        False,
        ("vtt", "srt"),
        (
            ("spoken", ("speech",)),
            ("spoken", ("speech", "sidecar")),
            ("written", ("slide",)),
        ),
    ),
    ("en", True, None, (("written", ("mov_text",)), ("written", ("mov_text",)))),
    (
        "zh",
        True,
        None,
        (
            ("written", ("slide",)),
            ("written", ("slide",)),
            ("again", ()),
            ("written", ("mov_text",)),
        ),
    ),
    ("es", True, ("srt", "vtt"), (("written", ("slide",)), ("written", ("sidecar",)))),
)
_COPY_DISTANCE = 4  # a twin or shared copy comes this many facts (of its pool) later
MAX_COUNT = 64
"""The most videos the fact catalog fills without repeating itself."""


def plan_samples(
    count: int = 64, *, seed: int = 0, languages: Sequence[str] = LANGUAGES
) -> SampleCorpus:
    """The corpus :func:`make_samples` would write, without writing anything: every video's
    id, duration, slides, subtitles and speech with their times. Deterministic in
    ``(count, seed, languages)``; ``seed`` shuffles which fact goes where, the titles and
    the colours."""
    chosen = tuple(languages)
    unknown = sorted(set(chosen) - set(LANGUAGES))
    if unknown or not chosen:
        message = f"languages must be a non-empty subset of {LANGUAGES}, got {chosen!r}"
        raise ConfigError(message)
    if not 1 <= count <= MAX_COUNT:
        raise ConfigError(f"count must be in 1..{MAX_COUNT}, got {count!r}")
    rng = random.Random(seed)
    recipes = [r for r in _RECIPES if r[0] in chosen]
    sequence = [(recipes[i % len(recipes)], i // len(recipes)) for i in range(count)]
    queues = {key: _queue(facts, rng) for key, facts in _catalog().items()}
    # How many facts each pool must give (a pool that runs dry is a catalog too small).
    needed: dict[tuple[str, str], int] = {}
    for (language, *_, parts), _cycle in sequence:
        for kind, _carriers in parts:
            if kind != "again":
                needed[(language, kind)] = needed.get((language, kind), 0) + 1
    for key, n in needed.items():
        if n > len(queues[key]):
            message = f"count={count} needs {n} {key} facts; the catalog holds {len(queues[key])}"
            raise ConfigError(message)
    videos = []
    placed: dict[str, Fact] = {}
    for index, ((language, title, sidecars, parts), cycle) in enumerate(sequence):
        facts = [queues[(language, kind)].pop(0) for kind, _ in parts if kind != "again"]
        for fact in facts:
            placed.setdefault(fact.id, fact)
        video = _lay_out(
            index=index,
            language=language,
            title=rng.choice(_TITLES[language]) if title else None,
            sidecar=sidecars[cycle % 2] if sidecars else None,
            parts=parts,
            facts=facts,
            background=(rng.randrange(10, 70), rng.randrange(10, 70), rng.randrange(40, 110)),
        )
        videos.append(video)
    corpus = SampleCorpus(
        count=count,
        seed=seed,
        languages=chosen,
        videos=tuple(videos),
        facts=tuple(placed.values()),
    )
    _check_copies_apart(corpus)
    return corpus


def _queue(facts: list[Fact], rng: random.Random) -> list[Fact]:
    """The pool's facts in the order they are placed: shuffled, the facts that have a copy
    kept in the first two thirds, each copy ``_COPY_DISTANCE`` facts after its original."""
    plain = [f for f in facts if not (f.twin or f.shared)]
    special = [f for f in facts if f.twin or f.shared]
    rng.shuffle(plain)
    rng.shuffle(special)
    slots = sorted(rng.sample(range(max(1, 2 * len(plain) // 3)), len(special)))
    order: list[Fact] = []
    for i, fact in enumerate(plain):
        while slots and slots[0] == i:
            slots.pop(0)
            order.append(special.pop(0))
        order.append(fact)
    order.extend(special)
    queue: list[Fact] = []
    pending: list[tuple[int, Fact]] = []  # (facts still to place before it, copy)
    for fact in order:
        queue.append(fact)
        pending = [(n - 1, c) for n, c in pending]
        queue.extend(c for n, c in pending if n <= 0)
        pending = [(n, c) for n, c in pending if n > 0]
        if fact.twin or fact.shared:
            pending.append((_COPY_DISTANCE, _twin_of(fact) if fact.twin else fact))
    queue.extend(c for _, c in pending)
    return queue


def _check_copies_apart(corpus: SampleCorpus) -> None:
    for fact in corpus.facts:
        videos = [v for v, _ in corpus.spans_of(fact.id)]
        if fact.shared and len(videos) > 1 and len(set(videos)) == 1:
            raise AssertionError(f"shared fact {fact.id} landed twice in {videos[0]}")
    for video in corpus.videos:
        ids = {s.fact for s in video.spans if s.fact}
        twins = {i.removesuffix("-twin") for i in ids if i.endswith("-twin")}
        if twins & ids:
            raise AssertionError(f"a fact and its twin landed in one video: {video.video_id}")


def _wrap(text: str) -> tuple[str, ...]:
    """Slide lines that fit 320 px at 20-px glyphs: up to 24 Latin characters, or 13 CJK
    characters (a Latin or digit run counts 0.6 each and is never split)."""
    cjk = any(unicodedata.east_asian_width(ch) in "WF" for ch in text)
    pieces = re.findall(r"[0-9A-Za-z.,:%-]+|\S", text) if cjk else text.split()
    room = _CJK_LINE if cjk else _LATIN_LINE
    lines: list[str] = []
    line, used = "", 0.0
    for piece in pieces:
        if cjk:  # punctuation may hang past the line's end rather than start a line
            punct = unicodedata.category(piece[0]).startswith("P") and not piece.isascii()
            width = 0.0 if punct else 0.6 * len(piece) if piece.isascii() else float(len(piece))
            gap, joined = 0.0, line + piece
        else:
            width, gap, joined = float(len(piece)), float(bool(line)), f"{line} {piece}".strip()
        if line and used + gap + width > room:
            lines.append(line)
            line, used = piece, width
        else:
            line, used = joined, used + gap + width
    if line:
        lines.append(line)
    if len(lines) > _MAX_LINES:
        raise ConfigError(f"slide text too long for {_MAX_LINES} lines: {text!r}")
    return tuple(lines)


def _speech_s(text: str) -> float:
    """How long the part holding a spoken ``text`` lasts: espeak-ng at 130 words a minute
    says ~13 characters a second, and the clip starts 0.2 s in (fitted on the catalog with a
    0.1 s margin; :func:`make_samples` speeds up a clip that would still overrun)."""
    return math.ceil((0.9 + 0.075 * len(text)) * 10) / 10 + 0.2


def _lay_out(
    *,
    index: int,
    language: str,
    title: str | None,
    sidecar: str | None,
    parts: Sequence[tuple[str, tuple[str, ...]]],
    facts: Sequence[Fact],
    background: tuple[int, int, int],
) -> VideoTruth:
    name = _SLUGS.get(title, title) if title else _UNTITLED[language]
    video_id = f"{language}/{_ascii(name.lower().replace(' ', '-'))}-{index:02d}.mp4"
    spans: list[Span] = []
    t = 0.0
    if title:
        spans.append(_slide(0.0, _TITLE_S, title, language, None))
        t = _TITLE_S + _GAP_S / 2
    else:
        t = _GAP_S / 2
    remaining = iter(facts)
    first: tuple[Fact, float, float] | None = None
    for kind, carriers in parts:
        if kind == "again":
            assert first is not None
            fact = first[0]
            spans.append(_slide(t, round(t + _REPEAT_S, 2), fact.text, language, fact.id))
            t = round(t + _REPEAT_S + _GAP_S, 2)
            continue
        fact = next(remaining)
        length = _speech_s(fact.text) if "speech" in carriers else _CUE_S
        if "slide" in carriers:
            length = max(length, _SLIDE_S)
        start, end = round(t, 2), round(t + length, 2)
        first = first or (fact, start, end)
        for carrier in carriers:
            if carrier == "slide":
                spans.append(_slide(start, end, fact.text, language, fact.id))
                continue
            channel = "speech" if carrier == "speech" else "subtitle"
            spans.append(
                Span(
                    channel=channel,
                    carrier=sidecar if carrier == "sidecar" and sidecar else carrier,
                    start_s=start,
                    end_s=end,
                    text=fact.text,
                    language=language,
                    fact=fact.id,
                )
            )
        t = round(end + _GAP_S, 2)
    duration = round(t - _GAP_S / 2, 2)
    stem = video_id.removesuffix(".mp4")
    sidecar_path = None
    if sidecar == "srt":
        sidecar_path = f"{stem}.srt"
    elif sidecar == "vtt":
        sidecar_path = f"{stem}.{language}.vtt"
    return VideoTruth(
        video_id=video_id,
        language=language,
        duration_s=duration,
        spans=tuple(spans),
        sidecar=sidecar_path,
        background=background,
    )


def _slide(start: float, end: float, text: str, language: str, fact: str | None) -> Span:
    lines = _wrap(text)
    return Span(
        channel="ocr",
        carrier="slide",
        start_s=start,
        end_s=end,
        text=text,
        language=language,
        fact=fact,
        lines=lines,
    )


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in folded)


# --------------------------------------------------------------------------- writing


def make_samples(
    folder: str | os.PathLike[str],
    *,
    count: int = 64,
    seed: int = 0,
    languages: Sequence[str] = LANGUAGES,
    progress: Callable[[int, int], None] | None = None,
) -> SampleCorpus:
    """Write the corpus of :func:`plan_samples` into ``folder``: ``<lang>/<name>.mp4`` (320 ×
    180, 5 fps, H.264; AAC speech where a video speaks; embedded ``mov_text`` where its
    subtitles are embedded), sidecar ``<stem>.srt`` / ``<stem>.<lang>.vtt`` files, and
    ``truth.json``. The same arguments give byte-identical files. Needs espeak-ng for speech
    and the DejaVu and WenQuanYi fonts. ``progress(done, total)`` is called after each video.
    Returns the truth (its ``folder`` set)."""
    from tideflow.media.testing import Cue, Scene, make_video, write_srt, write_vtt

    started = time.perf_counter()
    corpus = plan_samples(count, seed=seed, languages=languages)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for done, video in enumerate(corpus.videos, start=1):
        scenes = [
            Scene(start_s=s.start_s, end_s=s.end_s, lines=s.lines) for s in video.channel("ocr")
        ]
        subtitles = video.channel("subtitle")
        cues = [
            Cue(start_s=s.start_s, end_s=s.end_s, text=s.text, language=s.language)
            for s in subtitles
        ]
        embedded = [c for c, s in zip(cues, subtitles, strict=True) if s.carrier == "mov_text"]
        sidecar = [c for c, s in zip(cues, subtitles, strict=True) if s.carrier != "mov_text"]
        make_video(
            root / video.video_id,
            duration_s=video.duration_s,
            scenes=scenes,
            width=_WIDTH,
            height=_HEIGHT,
            rate=_RATE,
            audio=_soundtrack(video) if video.has_speech else None,
            audio_rate=_AUDIO_RATE,
            subtitles=embedded,
            background=video.background,
            # Slide videos, as a deck's screencast: the picture holds still while a slide
            # is shown (the frames near-duplicate removal is for).
            motion=False,
        )
        if video.sidecar and sidecar:
            writer = write_srt if video.sidecar.endswith(".srt") else write_vtt
            writer(root / video.sidecar, sidecar)
        if progress is not None:
            progress(done, len(corpus.videos))
    truth = json.dumps(corpus.to_json(), ensure_ascii=False, indent=1)
    (root / TRUTH_FILE).write_text(truth + "\n", encoding="utf-8")
    log.info(
        "samples.written",
        folder=str(root),
        videos=len(corpus.videos),
        facts=len(corpus.facts),
        seconds=round(time.perf_counter() - started, 2),
    )
    return SampleCorpus(
        count=corpus.count,
        seed=corpus.seed,
        languages=corpus.languages,
        videos=corpus.videos,
        facts=corpus.facts,
        folder=root,
    )


def _soundtrack(video: VideoTruth) -> np.ndarray:
    """The video's audio: each spoken span's text said by espeak-ng, starting 0.2 s into the
    span, sped up when it would overrun the span."""
    from tideflow.media.testing import speak

    track = np.zeros(round(video.duration_s * _AUDIO_RATE), np.float32)
    lead = 0.2
    for span in video.channel("speech"):
        voice = _VOICES[span.language]
        room = span.end_s - span.start_s - lead
        clip = speak(span.text, voice=voice, rate=_AUDIO_RATE, words_per_minute=_WORDS_PER_MINUTE)
        if len(clip) > room * _AUDIO_RATE:
            faster = math.ceil(_WORDS_PER_MINUTE * len(clip) / (room * _AUDIO_RATE)) + 5
            clip = speak(span.text, voice=voice, rate=_AUDIO_RATE, words_per_minute=faster)
        at = round((span.start_s + lead) * _AUDIO_RATE)
        clip = clip[: len(track) - at]
        track[at : at + len(clip)] = clip
    return track


def make_bad_samples(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Write videos that ingest must survive into ``folder/bad/``; return ``{video_id:
    what is wrong}`` (ids relative to ``folder``, like the good videos')."""
    from tideflow.media.testing import Scene, make_video

    root = Path(folder)
    bad = root / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    slide = (Scene(start_s=0.0, end_s=4.0, lines=("Nothing to hear here",)),)
    make_video(bad / "corrupt.mp4", duration_s=0.0, corrupt=True, seed=11)
    (bad / "empty.mp4").write_bytes(b"")
    make_video(bad / "silent.mp4", duration_s=4.0, scenes=slide, seed=12)
    broken = (Scene(start_s=0.0, end_s=4.0, lines=("Subtitles are broken",)),)
    make_video(bad / "broken-subtitles.mp4", duration_s=4.0, scenes=broken, seed=13)
    (bad / "broken-subtitles.srt").write_text(
        "1\nthis is not a timestamp\nHello\n\n2\n00:00:xx,000 --> soon\n", encoding="utf-8"
    )
    cut = (Scene(start_s=0.0, end_s=6.0, lines=("Half of this file is gone",)),)
    make_video(bad / "truncated.mp4", duration_s=6.0, scenes=cut, truncate=0.5, seed=14)
    return {
        "bad/corrupt.mp4": "not a video: an MP4 signature, then noise",
        "bad/empty.mp4": "zero bytes",
        "bad/silent.mp4": "no audio stream and no subtitles (one slide of text)",
        "bad/broken-subtitles.mp4": "its sidecar broken-subtitles.srt does not parse",
        "bad/truncated.mp4": "cut to half its bytes (index intact, later frames missing)",
    }


# --------------------------------------------------------------------------- queries


def build_queries(corpus: SampleCorpus) -> list[dict[str, Any]]:
    """One query per fact the corpus states (its paraphrased question; relevant: every span
    stating it), then :data:`UNANSWERABLE`. The record of ``data/queries.jsonl``."""
    queries: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    for fact in sorted(corpus.facts, key=lambda f: (LANGUAGES.index(f.language), f.id)):
        places = corpus.spans_of(fact.id)
        channels = [
            c for c in ("ocr", "subtitle", "speech") if any(s.channel == c for _, s in places)
        ]
        relevant = sorted({(v, round(s.start_s, 2), round(s.end_s, 2)) for v, s in places})
        counters[fact.language] = counters.get(fact.language, 0) + 1
        queries.append(
            {
                "id": f"{fact.language}-{counters[fact.language]:03d}",
                "query": fact.question,
                "language": fact.language,
                "channel": "+".join(channels),
                "answerable": True,
                "relevant": [
                    {"video_id": v, "start_s": start, "end_s": end} for v, start, end in relevant
                ],
            }
        )
    for n, (language, question) in enumerate(
        (u for u in UNANSWERABLE if u[0] in corpus.languages), start=1
    ):
        queries.append(
            {
                "id": f"none-{n:03d}",
                "query": question,
                "language": language,
                "channel": "none",
                "answerable": False,
                "relevant": [],
            }
        )
    return queries


def write_queries(
    path: str | os.PathLike[str] = DEFAULT_QUERIES, corpus: SampleCorpus | None = None
) -> int:
    """Write :func:`build_queries` of ``corpus`` (default: the default corpus) as JSON lines;
    return how many. Used once to freeze ``data/queries.jsonl``, then reviewed by hand."""
    records = build_queries(corpus or plan_samples())
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(records)
