plugins {
    // AGP 8.7 needs Gradle >= 8.9 and JDK 17.
    id("com.android.application") version "8.7.3" apply false
}
