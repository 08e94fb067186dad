"""Peer of bench/export: Pathling (PyPI `pathling`, Spark local[2]) runs the given
ViewDefinitions over an NDJSON directory and writes each view to a Delta table.
Usage: peer_pathling.py NDJSON_DIR VIEWS.json OUT_DIR. Prints one JSON line:
{"rows": {view: n}, "inner_s": seconds from the data read to the last Delta commit}
(the process wall time, JVM and Spark start included, is measured by the caller)."""
import json
import os
import sys
import time

from pathling import PathlingContext

src, views_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
views = json.load(open(views_file))
from pathling._version import __delta_version__, __java_version__, __scala_version__
from pyspark.sql import SparkSession

# Pathling's own session recipe (its jars + Delta), with local[2] and enough driver memory.
spark = (SparkSession.builder.master("local[2]").appName("bench-export-pathling")
         .config("spark.jars.packages",
                 f"au.csiro.pathling:library-runtime:{__java_version__},"
                 f"io.delta:delta-spark_{__scala_version__}:{__delta_version__}")
         .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
         .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
         .config("spark.ui.enabled", "false").config("spark.driver.memory", "6g")
         .config("spark.sql.session.timeZone", "UTC").getOrCreate())
pc = PathlingContext.create(spark, enable_delta=True, enable_terminology=False)
pc.spark.sparkContext.setLogLevel("ERROR")
t0 = time.time()
data = pc.read.ndjson(src)
rows = {}
for v in views:
    df = data.view(v["resource"], json=json.dumps(v))
    df.write.format("delta").mode("overwrite").save(os.path.join(out, v["name"]))
    rows[v["name"]] = pc.spark.read.format("delta").load(os.path.join(out, v["name"])).count()
inner = time.time() - t0
print(json.dumps({"rows": rows, "inner_s": inner}))
