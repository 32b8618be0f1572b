"""The demo's door camera: the registry's camera watching the producer's storage door uploads
a snapshot of the door every half minute, as the edge agent (hazwatch camera) uploads its
evidence, so that each batch's storing on the batch page shows the door as the camera saw it.

Never need the camera extra: the scene is drawn with OpenCV when it is installed, else one
frame of it kept here (simulators/video_scenes.py "person", 240×180, drawn once).
"""

from __future__ import annotations

import base64
import hashlib

import httpx

from hazwatch.devices.camera import snapshot_name

# simulators.video_scenes.Scene("person", 240, 180, seed=3, noise=0).frame(40), JPEG q50
FALLBACK_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4"
    "UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAC0APADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcI"
    "CQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRol"
    "JicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ip"
    "qrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAA"
    "AAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLR"
    "ChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaX"
    "mJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEA"
    "PwDJkupzPJIpi/eMGIKE44A9fahrq57mIf8AAD/jW2NNtCf9T/48f8aUaXaY5i+nzH/GsXCL1aN1VklZMxftNwQOYs/7"
    "h/xot765gmkkxEzMoX7pAGM+/vW1/Z1r/wA8f/Hj/jR/ZtqDxF9fmP8AjTUEtUhSquSs2Z41mfbnZFnuMH/GqMc1xHEk"
    "StGQigDKHPH41uHTLTJ/df8Ajx/xpw020x/qx/30f8aHFPcUZuOxh/arrPWIf8AP+NIbu5DcNF/3wf8AGtw6ZaYx5JP/"
    "AAI/40q6ZZj/AJZc+7H/ABpezj2L9tPuZFvqc9tAI0WNuWbJU9yT6+9F3qM91b+URGMlTwD1BB9fatb+zbUjHk9P9o/4"
    "0h0y0HWL/wAeP+NWtDJtPcwzNcbfvR/98H/GkWec/wAUX/fB/wAa3zptp2i/8eP+NIdMtP8Anj/48f8AGtPa1O5l7Kn2"
    "OflknljaMtGAwKnCH/Gr/wDa1xn7sf5H/GtEaXaZ5h/8eP8AjStplnn/AFX/AI8f8amUpS3ZcYxjsjHnvZp5I5P3YaNW"
    "UfKSCDj39qj+13GeTD/3wf8AGtsabad4fyY/40p0uzPSL/x4/wCNZuCerRrGq4qyZhm7uePmi/74P+NKl3Os8UjGM7CS"
    "AFIycEevvW0NNsxnMPt94/40q6dad4fp8x/xpKEVqkN1ZNWbM46xcf3IvyP+NVJLm4eWSYNEPMYEgqeOAPX2rb/s20H/"
    "ACw6n+8f8aQ6Zag/6nj/AHj/AI1TV9GRGXK7oxftVx0zDn/cP+NAurnqTDj/AHD/AI1uHTrP/njn/gR/xpBp1pz+5/8A"
    "Hj/jU+zj2NPbT7mPbX1xBLJJiMl1VcbSOmff3qwNYn6eXHn6H/GtH+zbXP8Aqf8Ax4/40h0203f6nH/Aj/jVJW0Rm5Xd"
    "2WyMnpg+lGeOtBJBHv3NB460yBOSeeKwdUx/wkFtg/8ALL/4qt4nnGfpWDqf/Iw23I/1X/xVD2Y1uWMDrmgAbevNHccc"
    "UHGc9K5jY2MgDGMfWmgZ75+lZM26S9uQ0kwCuAoWVlAGxT0B96b5ZI4luP8Av+/+NaSrRi7MccPOSujZ+hpME/T1rG8v"
    "HBluP+/7/wCNWdOLC5nTfKyhEIDuWwSW9T7CnGrGTshToSgrs0OMcZxQDkZ6UDI+U9K5623vbRM01wSUBJ89+uPrXRTp"
    "uexy1KihudCGwOlBPIH61hbW/wCe8/8A3/f/ABpDu2jEtxn/AK7v/jWv1afcy+sw7G9tPuRQSM81U0l3axXe5Y73GWJJ"
    "4Ygcml1RitkxDMpLoMqSDy4B5Fcz0OiOti0Rn60ueMD8axvK/wCm1wT/ANd3/wAaQRk9Zbj/AL/v/jWPt4nV9Vn3Rtde"
    "lIR781h3KsltK6T3AZUJB89+uPrW4Qd1XCansZVKTpuzAggZNKFHvzWdqW43NunmSKpRyQjlcnK+h9zUBT0mnH/bd/8A"
    "GlKrGLsyoUJTV0bHAGAMkUoJwTWIIsf8trjP/Xd/8afACl7bFZpjuchg0rMCNjHoT7Uo1oydkOWHnFXZrnpnBzSEE0ck"
    "cmsa5Ltf3I86YBWAAWVgANqnoD710Qg5uyOWc1BXZtYHTmgLz1yKwCrE/wCvuMf9d3/xpSjD/lvcD389/wDGtvq0+5j9"
    "Zh2N7+LIOfajk9+KzNKY/abhDJIyhEI3uWwSWz1+grTPA+XpWEo8rszeMuZXQcnFIRhuePrQAc8nrSle2elSMRcdD+dY"
    "OqjHiC2P/TL/AOKrfJyAMdKwdT58QW3I/wBV/wDFUPZjW5OMH8KDnJ9KM46dKP4hk4rmNi9pVlHf6xfRy7wAQ2VI/up/"
    "jW1/wjlmAP3s/wD30P8ACufgvJ7TULySBtjFwvQHjYnrVj+2tRBybj/xxf8ACm5U03zI2jCq4pxdkSazpsNg0PlNIfM3"
    "Z3kHpj296pacSLy4wP8AlnH/ADenXV7cXgU3Em/bnb8oGM/T6UzTmH2u4AH/ACzj/m9TTadS8diqykqNpbmgeag8O6Pb"
    "32kxzSvKrDC4QjGNo9R71YJwMisjTNTvLPT4Y7abYpUMRtB5wPUe1elRUnflPJrOKtzHSjwxZLyZZ/8Avof4Vz+q2qWm"
    "oy28bMUTGN3XkA/1qf8At3UgPmuf/HF/wqhPNLdTtNM252xk4A7Y7V1U4zT95nNUlBr3UXNJBOnr6+ZJ/wChtTtWP+hE"
    "f9NI/wD0NaTSgfsCk/8APST/ANDal1P/AI8yT0Mkf/oa15092ehT6Gxa6DaTWsMrSTbpEVjhhjkfSpf+EdtM/wCsn/76"
    "H+FYyaxfRxrGk21FAVfkXgflSnWdR6G4/wDHF/wrlU6VtjvdOvfSRlXe4Wk+Rx5bfyrcbnvisO7wbOfP/PNv5VuYIPtV"
    "UNmRi/iRTmjE2r2MTEgOGUkehZK3f+Ebsz/y1n/76H+Fc/euYtRtZEbDKjkH0IKVYGt6hnP2jn/cX/CicoKXvIKcKkoL"
    "kdi9qWiW9pYyTxvKWTGAxGOoHpWFGB9tte/7w/8AoDVbn1O9uIWinm3I3UbQPf0qmnF7aY6eYf8A0BqzTi6i5UauM40m"
    "pu5rdaraXYRahrl7FMzqow3ykZztQd/rVlcjkHIrMW7nstUvJbd9jFgpOAeNi+v0r0aKbloeTWaUdTom8MWRb/W3GB/t"
    "D/CsrXdLg002/kvI3mbs7yD0x7e9QjXdTI5ueP8Armv+FQ3V9cXwQ3Mm/Znb8oGM/T6V1wjUTvJ6HLOdNxtFai6ZxeXG"
    "P+ecf83rS4Oc9KytKI+2XP8AuR/zetMj05Fcdb42ddL4EGSQcdKcDkYPU0EAdBSnkVkaCDgcisHU+fEFtx/yy/8Aiq3h"
    "yOBmsDUtw8RW2Onlf/FUPZjW5ZAx92kbJINICccn8aXB7GuY2CQn7ddf9dB/6AtOJyKyGLNIzF5dzcsfMbk4x6+1GXBw"
    "JJR/21b/ABpyouTvc3hXUYqNjXz0FP08Zvrnt+7j/m9Yo3n/AJaS/wDf1v8AGnxySwuSksilsAneT0/H3NOnS5XcmrWU"
    "42sdTg5GK560ObaI/wCwv8qj+1XAY/v5f++zVcRhQAGkA9BI3H6120qqpt3PPq0XNKzNAA896AeSDVDaRkb5f+/jf40K"
    "vU75f+/jf41v9aj2MPqku5v6SSNOXHQySf8AobU7VMix6/8ALSP/ANDWsCOSWNdkc0iqMnAc/WlkmmmTZJNIy8HG89jm"
    "uKTvc7Yx5bGoTkdeaTHqaycHtLL/AN/W/wAaDux/rZf+/rf41y+wfc7/AKyuxfvDiyn/AOubfyrcHr+Ncm67lKmSUg8E"
    "GRuf1qwLu4GR58pP++a2pw5Ec1aftGmauoMWvbfp/q5P5pULA59BWZI7ylWkllZgCAd5GM9e/sKZhv8AnpN/39b/ABqK"
    "lLmdzSlWUI2sa3bgURj/AE20H/TQ/wDoDVlAN/z1l/7+t/jSjcrBhLLuB4JkY44x6+9KNFxd7lTrqUXGx1XTjPFYc6/8"
    "TC6z/fH/AKAtVBdXAOPPl/77NMcl3Zy0hZuSfMIz29a7KU1CV2efVpucbIvY6AUnris8L1+eXP8A10b/ABpQOOXlI/66"
    "N/jXT9aj2Ob6pLubOlf8fdx6eXHn83rSyfTiuVikeJmMUsi5ABO884//AF1J9ruMH/SJf++zXJOXNJs64QcYpHUdTg03"
    "nnFJk0vptqQHA/L71z+pknxFb9v3P/xVb4HesHVCD4htvXyv/iqHsxrcsAFuAM9zSfQ4qe1umtmJVQcjHNV2O7njJPYY"
    "rkTd2mtDc2Pp+VJjnkUDg04fNweAK6znE6EUjZHFOJ9KTHPJ5oARNxHNBGAAPxoGR7GlA+bNAC44pv3VzS9GNKcBRnnI"
    "oAaBgE+tKuc47UnQDH5UvOMigAP3uKCeg7UtBAY0AJgUbgOKXHPtScdP1oAaSPSl+lKeB6+9Iq96AAn0pQPl96Ug5puf"
    "fpQAc56c0uT37UinB3Zpc5zx1oAQMeuKUAbev4UmcdOlBbpQAbeKVcenFHGKM/LgDmgA6d6XjoT170mAVx3oH908mgBc"
    "4/lWDqmP+Egts8fuv/iq3QMEfzrB1QH/AISG2/65f/FUPZjW5OcY5oYjjaKQsc4A4oHBrmNjXbOc9PelDfLRyegpNp5r"
    "pMBQckilyAKaePr3pSCaADPY9aMnb0oxzzxRjOaAAjAz60mO2ad1HNIR7UABz36UoHvSMPajOelABkbsUZ46UgI7ClNA"
    "ACaMjoaQtxgjFGCeTQAuM9KTODjrmjdhQCOtLyTxQAGkYZpenOKBgmgBAeMUEAn0pcEHNGTjFAAw6ClIG2kycjFHP50A"
    "BznjpjFAyM4o5FJ14zk0ALg7c96O5HU0A8HJpxOec0ANOOlYOqHGv22Bz5X/AMVW8SAOawdV/wCRhtsjnyv/AIqh7Ma3"
    "Jsk/Sl4HfFABpTgHmuY2NJp4eolTH+8KPPix/rE/76FYh3F8YHy+9Oy57D866TA2TNE3/LVB/wACFKLiHp5qZ/3hWICw"
    "ONoOPekVizk7R6daANwzQnpKmT/tCmieIZ/eJ/30KxjuyDgfnTiWxnaPzoA2PPix8sqZ/wB4UCeLPzSJ/wB9CsVd23IA"
    "5560qs/dR+dAG0Zov+eqc/7Qpv2iL/nqhH+8KxWL4JAHPvS4YAAAYHTmgDa+0QjjzE/76FJ50XB81P8AvoVisXz90fnQ"
    "24hRxyc9aANwyxH/AJaJ/wB9Ck86LP8ArU/76FYwdwcYH50bjz8q/nQBto8cjqiuhY9AGq+sCKuCM+prnNOl2alCzgdC"
    "M5PeumDAjOa8rMZ1YuPJe3kdNCMWncp3KrAQWYBD0yelVzNED/rEP/AhS63KPs6IACxbIyfTv/n1rDBbLcDJ56124Vzd"
    "JOpuZVElJ2NszxHjzU/76FKJYT/y1T/voVhncMcD86cC3oPzroMzZ86Hj94h9DuFHmxAEGVP++hWIpfHAGB707c3cD86"
    "ANhp4dv+sT/voUvnw/8APVPpuFYrq20jAGehzQCxxgDBHrQBuC4hGP3if99CmtPCT/rE/wC+hWMN3QqPzpHLDDYGB15o"
    "A2vOiP3pkx/vCsTVGV/ENsVYECLsc/3qd8wHQH8aqXME8tyk8LojIuOfx9vejoM0Q23qKMhjWbs1IYDXEfJ9B/hSqmpD"
    "gXEf5D/CsvZs050WQ23nnJ68GlDD/a5/2TTuvbrRnmtTIazgL8oOfoaVcAcA8dTg0rn5wOw5zS5AHvQA0SAZ4JP0NDOG"
    "THIJ46GnD6ZprfeHHA5oAXcuB1HHoaTeAeQfyNKevJ5oPJGaAGEgqCARk+ho3j0I/A05uXAzwKVsA460AG8Zzz/3yajL"
    "BnHUY56GpQOME9aZtAkAPPBoAMjGSD+RpQVA5zg+xpR7HgUuc80AUryZ4inlkrnI5H09aVNb1BEKifPGAWUEjmmakcmP"
    "8f6VSqrJmcpNPRlv7dczzqZpS2WGcgdM1eDDcTz0HY1kwf6+P/eH861gMScdx/n+dJlQbe4Bhyfm/wC+TSh854P5GlLc"
    "4x1oGd2D0pFDVbG7OevTBpxdSOAcj2NJ0kPuOP8AP404jC8UAMDEnJB/I0gfAIOevoakGMcfjTP4zz1FACh8/wB7A/2T"
    "SEqwI+YA9eDTwc5HQYoxlSaAI1fC7Tkn6GlyMd/yNKoKyHnqM04YLc0AMY5GOfrtNAcEZ5HrwaeTnGKb/FgnrzQAhLjg"
    "kflSgOF5ZfypXJI+tMfO3Z68UAADsM5HJ9KX5+MMDj2pVzxg0uOKAAM+cAj8qZliSWI6+lO3bQfWlAwAOwGKAEYMe6/l"
    "QQw5yPypwXvSjNAEagkk7hnp0oy2/kj8qWMfKOOvNOIoAbg7hlh+VMyQ7cjt2p+KRMEsCMkHr+FABhh/EPypfmzjcPyp"
    "2Mjk4NNzkkd6AKWo5ygJHfoKpVc1H76c9qp1SMZbj4P9fHj+8P51qkPvHI6HtWVB/r4/94fzrWYE7T7/ANKTLgLlgOq/"
    "lSAkjlh+VOI+UcZoI6GkWNydw5Hp0/z6U4Fj/EPypHxtzjoQaOcgdqAEBc5+YflQ28AEMOvpTuAeDQ6ZUgHnqKAEw2M5"
    "H5Unz44I/KnJgjIPBFA+tADCrYzuHHPSnDf6r+VP+XYQOtMXO3aeT0oAMsB1Xn2pGUsvBGRyOKXtzSj7uCaAGgZ/iI/K"
    "k25kPzHgYzx/n0p7kBSRmhcKu09e9ADV4Xqf0oCtgncf0p20dulLkfnQBEwYsAGOc5PSn4YMG3t+QpB8znB4XgU8tjoa"
    "AGkkkgs3X0FJJwhwzZHsKeBwOaa3OBjqaAERCBje3H0pQDz85/SlAyDzRjA6UAIc4++36UiA7fvHkn0p3U+1NQ/IPegB"
    "SuP4j+lAU5+836U7BHQ0hJxkHFAGdqWVdOc5B61UXLK5/ujP6gf1q1qn34/oaqxfcm/3P/ZhVLYlpDrdibiIf7Y/nWww"
    "PA3Ec9eKxbb/AI+Yv98fzral7cnqP50mNKwYI43t+QoKEL99v0p2DwCaN2eKQxrL8hwx6d8Uq5YbskZHtS9eKSPOzbxx"
    "wKADYe7H9KQKSD8x/Sn8ngjilxxgmgCEKwBG49fanANj7xz+FO43/h/n+dKeOlADFD9CxP5UNkNgsRn6U7GBmkk+6GHb"
    "mgA2543t+QpMM3Rj+lO9skGl70AMfcSFLDj2owc9R+VKAX3HPtj6UoyenWgBPmPce3FDFtvJX64p3Q7sdqazZAXaDuoA"
    "aAwAbIBPtTsNnOQfwoIOMGlyccUANHmFsbgPwoO8sBuH5U4c9OTQAC7diMD/AD+dADcOvUj8qBvz95fyp7BietIBk9KA"
    "GtvVCdwwOcYpUVgAAwOPUU2XO3HTPHFPwcdaAB9wHVc+wpCDjqM/SlAGM0oGOhxQBmanndHk54PaqsX+rm/3P/ZhWndW"
    "32l1G/btHpnrUX9nbFcebncMfd9wfX2qrgUbf/j4ix/fH862XDBTlhxz0qpDp2yRH83O0g42/wD16uSD5W+lJgG1t2dy"
    "/lS7XB4YflS9eQM4pcGkA35j3X8qaA2W5HBz0qTjrimnhvqP8/zoACX6hh+VHzHncPypSTxSE/pQA1g2OoyD1xSgP1LL"
    "x7U7qvJ4PFJ1TOOtACAE88Z+lHzAdV/Knd8Z7UKOxFADRuAPIwvHSl+fPBH5UrZDZ7EYpQc9aABQFyAMUnQUUUAAJ29a"
    "Q/6xR7E0UUAOJ5FKAMdKKKAGr7elIn3PxNFFACg4pehwKKKAGt0/EfzpR0oooAM4OO1BGeTRRQAg+8fw/rTjziiigApM"
    "A9eaKKAFQ/Kv0FLnrRRQAg9KYxO5T+FFFAC0pPFFFAB2xTV+6fx/nRRQAA4NPPSiigBrE9Pcfzp4HzGiigD/2Q=="
)


def door_jpeg(index: int) -> bytes:
    """A frame of the storage room with a person at the door: drawn anew when OpenCV is
    installed (each index a moment of the walk), else the frame kept here."""
    try:
        import cv2

        from hazwatch.simulators.video_scenes import Scene
    except ImportError:
        return FALLBACK_JPEG
    frame = Scene("person", 320, 240, seed=3).frame(20 + index % 40)
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return bytes(data) if ok else FALLBACK_JPEG


class DoorCamera:
    """Uploads `camera`'s snapshot of the door at `site` through the API (POST /api/snapshots,
    with the API token when one is set), one each `upload`, every `every_s` in the demo."""

    def __init__(
        self, api: str, site: str, camera: str, *, token: str = "", every_s: float = 30.0
    ) -> None:
        self.api, self.site, self.camera = api.rstrip("/"), site, camera
        self.token, self.every_s = token, every_s
        self.sent = 0

    def upload(self, now_ns: int) -> None:
        jpeg = door_jpeg(self.sent)
        name = snapshot_name(self.site, self.camera, now_ns, self.sent + 1, "motion")
        headers = {"Content-Type": "image/jpeg"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        answer = httpx.post(
            f"{self.api}/api/snapshots",
            params={"name": name, "sha256": hashlib.sha256(jpeg).hexdigest()},
            content=jpeg,
            headers=headers,
            timeout=10,
        )
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"snapshot upload: HTTP {answer.status_code} {answer.text[:200]}")
        self.sent += 1
