"""Peer of bench/export: Pathling (PyPI `pathling`, Spark local[2]) runs the given
ViewDefinitions over an NDJSON directory and writes each view to a Delta table.
Usage: peer_pathling.py NDJSON_DIR VIEWS.json OUT_DIR. Prints one JSON line:
{"rows": {view: n}, "inner_s": seconds from the NDJSON read to the last Delta commit (the row
 count read back from each table afterwards is not timed),
 "startup_s": seconds to start the JVM + Spark session + Pathling context,
 "pathling": version, "java_home": JDK used}
(the process wall time, interpreter start included, is measured by the caller).
Pathling 9.x runs on Spark 4 and needs Java 21+: JAVA_HOME is taken from the environment
(run.sh picks a JDK >= 21 when one exists). The --add-opens below are Spark 4's own list
(JDK 24+ rejects -Djava.security.manager=allow, so it is not passed)."""
import json
import os
import sys
import time

t_start = time.time()
from pathling import PathlingContext
from pathling._version import __delta_version__, __java_version__, __scala_version__
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

src, views_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
views = json.load(open(views_file))

JVM_OPTS = " ".join([
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
    "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
])

# Pathling's own session recipe (its jars + Delta), with local[2] and enough driver memory.
spark = (SparkSession.builder.master("local[2]").appName("bench-export-pathling")
         .config("spark.jars.packages",
                 f"au.csiro.pathling:library-runtime:{__java_version__},"
                 f"io.delta:delta-spark_{__scala_version__}:{__delta_version__}")
         .config("spark.driver.extraJavaOptions", JVM_OPTS)
         .config("spark.executor.extraJavaOptions", JVM_OPTS)
         # JDK 24+: Hadoop < 3.5 calls Subject.getSubject, which now throws; run.sh puts
         # Hadoop 3.5 client jars here (they come first on the driver's class path).
         .config("spark.driver.extraClassPath", os.environ.get("PATHLING_EXTRA_CLASSPATH", ""))
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
    # Pathling 9.4 + Spark 4.0: writing a "decimal"-typed view column as is fails in the
    # Parquet writer (ArrayIndexOutOfBounds: the row carries one field more than the
    # schema); an explicit cast to a Spark decimal makes the projection concrete.
    for c in v["select"][0]["column"]:
        if c.get("type") == "decimal":
            df = df.withColumn(c["name"], F.col(c["name"]).cast("decimal(38,6)"))
    df.write.format("delta").mode("overwrite").save(os.path.join(out, v["name"]))
inner = time.time() - t0
for v in views:  # row counts read back from the tables, outside the timed part
    rows[v["name"]] = pc.spark.read.format("delta").load(os.path.join(out, v["name"])).count()
print(json.dumps({"rows": rows, "inner_s": inner, "startup_s": t0 - t_start,
                  "pathling": __java_version__, "java_home": os.environ.get("JAVA_HOME", "")}))
